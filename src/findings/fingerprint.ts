import { createHash } from "node:crypto";
import type { NewFinding } from "./finding.js";

/**
 * The message with what varies between runs of an analyzer masked: case,
 * quoted literals (`'foo'`, "bar", `baz`), numbers and runs of whitespace.
 * "Variable 'x' unused at 12" and "variable  'y' unused at 40" normalize
 * alike, so the same issue keeps its fingerprint when names or lines move.
 */
export function normalizeMessage(message: string): string {
  return maskQuoted(message.toLowerCase())
    .replace(/\d+/g, "<n>")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * The finding's fingerprint: the given one, or the SHA-256 (hex) of source,
 * rule, file and normalized message — its identity across analyzer runs.
 * The line is left out on purpose: code moving up or down is not a new issue.
 */
export function fingerprintOf(finding: NewFinding): string {
  if (finding.fingerprint) return finding.fingerprint;
  return createHash("sha256")
    .update([finding.source, finding.ruleId, finding.filePath, normalizeMessage(finding.message)].join("\0"))
    .digest("hex");
}

// From just after an opening quote: escaped characters and anything but a
// backslash or that quote. Nothing follows the loop, so it never backtracks;
// it stops at the closing quote, or where no closing quote can follow (a
// backslash before a line break or the end).
const quotedBody: Record<string, RegExp> = {
  "'": /(?:\\.|[^\\'])*/y,
  '"': /(?:\\.|[^\\"])*/y,
  "`": /(?:\\.|[^\\`])*/y,
};

/**
 * Replaces each quoted literal with `<str>`, as
 * `/(["'`])(?:\\.|(?!\1)[^\\])*\1/g` would, in linear time. That regex
 * rescans the rest of the text from every opening quote that is never
 * closed, and `'\'\'\'…` has one at every other character: 4,000 characters
 * took 100 ms, and a batch of 1,000 such findings minutes.
 */
function maskQuoted(text: string): string {
  const quote = /["'`]/g;
  // Where the last unclosed literal of each quote stopped: a later quote of
  // the same kind before that point sat inside it as an escaped character,
  // so the scan from it would stop at the same place and fail too.
  const unclosedUntil: Record<string, number> = { "'": -1, '"': -1, "`": -1 };
  let out = "";
  let copied = 0;
  for (let m = quote.exec(text); m !== null; m = quote.exec(text)) {
    const q = m[0];
    if (m.index < unclosedUntil[q]!) continue;
    const body = quotedBody[q]!;
    body.lastIndex = m.index + 1;
    body.exec(text);
    const end = body.lastIndex;
    if (text[end] !== q) {
      unclosedUntil[q] = end;
      continue;
    }
    out += `${text.slice(copied, m.index)}<str>`;
    copied = end + 1;
    quote.lastIndex = end + 1;
  }
  return out + text.slice(copied);
}
