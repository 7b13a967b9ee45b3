import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Parses a REST query string as URLSearchParams does, except that a
 * percent-encoded value that is not UTF-8 is refused (INVALID_ARGUMENT), as a
 * body that is not UTF-8 is: URLSearchParams would decode it with U+FFFD and
 * the bad bytes would be stored as if the client had meant them.
 *
 * @example parseQueryString("q=a%FFb") // throws INVALID_ARGUMENT
 */
export function parseQueryString(raw: string): URLSearchParams {
  const params = new URLSearchParams();
  // Stryker disable next-line ConditionalExpression,StringLiteral: equivalent: "" splits into one empty pair, which is skipped
  if (raw === "") return params;
  for (const pair of raw.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const name = decode(eq === -1 ? pair : pair.slice(0, eq));
    params.append(name, eq === -1 ? "" : decode(pair.slice(eq + 1)));
  }
  return params;
}

function decode(text: string): string {
  const spaced = text.replaceAll("+", " ");
  // Stryker disable next-line ConditionalExpression,StringLiteral: equivalent: decoding text without "%" leaves it as it is (the test only saves the call)
  if (!spaced.includes("%")) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    // decodeURIComponent refuses both bytes that are not UTF-8 and a stray `%`;
    // URLSearchParams keeps a stray `%` as it is, so only the former is an error.
    // Stryker disable next-line Regex: equivalent: isUtf8 finds bytes that are not UTF-8 only in complete "%xx" escapes, which '%x' matches as well
    if (/%[0-9a-f]{2}/i.test(spaced) && !isUtf8(spaced)) throw new ConnectError("query string is not UTF-8", Code.InvalidArgument);
    // Stryker disable next-line StringLiteral: equivalent: the parameter x is always there
    return new URLSearchParams(`x=${text}`).get("x") ?? "";
  }
}

/** Whether the percent-encoded bytes of `text` (a stray `%` kept as it is) form UTF-8. */
function isUtf8(text: string): boolean {
  // Stryker disable next-line ArrayDeclaration: equivalent: a leading non-number becomes byte 0, valid UTF-8
  const bytes: number[] = [];
  // Stryker disable next-line EqualityOperator: equivalent: one step past the end encodes undefined as no bytes
  for (let i = 0; i < text.length; i++) {
    const hex = text.slice(i + 1, i + 3);
    // Stryker disable next-line Regex: equivalent: `hex` is at most two characters, so either anchor alone anchors both ends
    if (text[i] === "%" && /^[0-9a-f]{2}$/i.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...new TextEncoder().encode(text[i]!));
    }
  }
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bytes));
    return true;
    // Stryker disable next-line BlockStatement: equivalent: without its return, isUtf8 returns undefined, which its one caller reads as false (`!isUtf8(…)`)
  } catch {
    return false;
  }
}
