import { createHash } from "node:crypto";
import type { NewFinding } from "./finding.js";

/**
 * The message with what varies between runs of an analyzer masked: case,
 * quoted literals (`'foo'`, "bar", `baz`), numbers and runs of whitespace.
 * "Variable 'x' unused at 12" and "variable  'y' unused at 40" normalize
 * alike, so the same issue keeps its fingerprint when names or lines move.
 */
export function normalizeMessage(message: string): string {
  return message
    .toLowerCase()
    .replace(/(["'`])(?:\\.|(?!\1)[^\\])*\1/g, "<str>")
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
