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
  if (!spaced.includes("%")) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    // decodeURIComponent refuses both bytes that are not UTF-8 and a stray `%`;
    // URLSearchParams keeps a stray `%` as it is, so only the former is an error.
    if (/%[0-9a-f]{2}/i.test(spaced) && !isUtf8(spaced)) throw new ConnectError("query string is not UTF-8", Code.InvalidArgument);
    return new URLSearchParams(`x=${text}`).get("x") ?? "";
  }
}

/** Whether the percent-encoded bytes of `text` (a stray `%` kept as it is) form UTF-8. */
function isUtf8(text: string): boolean {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = text.slice(i + 1, i + 3);
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
  } catch {
    return false;
  }
}
