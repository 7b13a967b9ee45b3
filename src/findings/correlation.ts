import { type Finding, severityRank } from "./finding.js";

/**
 * Alert correlation: which unresolved findings may explain a production
 * alert, and how sure we are. A pure function of the alert and the candidate
 * findings — no SQL — so each score can be recomputed and explained by hand.
 *
 * Evidence, each in [0, 1]:
 * - paths match when equal, or when the finding's path is a trailing part of
 *   the alert's (or a frame's) path at a `/` — runtimes report absolute
 *   paths (`/app/src/a.ts`), analyzers repository-relative ones (`src/a.ts`);
 * - proximity(d) = 0.5^(d / 20), d = lines between a line and the finding's
 *   range [line, end_line] (0 inside it): halves every 20 lines, so 200
 *   lines away is ~0.001;
 * - a (alert location) = 0.4 + 0.6 × proximity(alert line) in the alert's
 *   file (0.4 when the alert has no line), 0 elsewhere;
 * - s (stack) = max over frames in the finding's file of
 *   (0.3 + 0.7 × proximity(frame line)) × 0.9^depth, depth 0 = first frame;
 * - location = 1 − (1 − a)(1 − s): independent evidence reinforces;
 * - text = share of the finding's words (issue type, rule, message; three
 *   letters or more, camelCase and snake_case split, common words dropped)
 *   that also occur in the error message.
 *
 * confidence = 0.8 × location + 0.2 × text, and 0 without location evidence:
 * words alone never tie an alert to a finding in an unrelated file.
 */

/** A production alert, as CorrelateAlert receives it. */
export interface Alert {
  readonly filePath: string;
  /** 0 when unknown. */
  readonly line: number;
  readonly errorMessage: string;
  readonly stackTrace: string;
}

/** One frame of a stack trace: where, and how deep (0 = innermost). */
export interface StackFrame {
  readonly filePath: string;
  readonly line: number;
  readonly depth: number;
}

/** A scored finding: confidence in [0, 1] and the evidence in words. */
export interface Correlation {
  readonly finding: Finding;
  readonly confidence: number;
  readonly reason: string;
}

/** Frames beyond this many distinct ones are ignored. */
export const maxFrames = 50;

/**
 * Reads `path:line[:col]` frames (V8, Go, Java, Rust) and `File "path",
 * line N` frames (Python), in order, without repeats.
 */
export function parseStackTrace(stackTrace: string): StackFrame[] {
  const found: Array<{ at: number; filePath: string; line: number }> = [];
  for (const m of stackTrace.matchAll(/File "([^"\n]+)", line (\d+)/g)) {
    found.push({ at: m.index, filePath: m[1]!, line: Number(m[2]) });
  }
  for (const m of stackTrace.matchAll(/([^\s()'"<>\[\]]+\.[A-Za-z0-9]+):(\d+)(?::\d+)?/g)) {
    found.push({ at: m.index, filePath: m[1]!.replace(/^file:\/\//, ""), line: Number(m[2]) });
  }
  found.sort((x, y) => x.at - y.at);
  const frames: StackFrame[] = [];
  const seen = new Set<string>();
  for (const f of found) {
    const key = `${f.filePath}:${f.line}`;
    if (seen.has(key) || !Number.isSafeInteger(f.line)) continue;
    seen.add(key);
    frames.push({ filePath: f.filePath, line: f.line, depth: frames.length });
    if (frames.length === maxFrames) break;
  }
  return frames;
}

/**
 * The paths a finding may be stored under to match `path`: the path and
 * every trailing part of it at a `/`. Used to fetch candidates by index.
 */
export function pathSuffixes(path: string): string[] {
  const parts = path.replace(/^\.\//, "").split("/").filter((p) => p !== "" && p !== ".");
  return parts.map((_, i) => parts.slice(i).join("/")).concat(path.startsWith("/") ? [path] : []);
}

/** Whether a finding's path names the file at `path` (see pathSuffixes). */
export function pathMatches(findingPath: string, path: string): boolean {
  return pathSuffixes(path).includes(findingPath);
}

/** 0.5^(d/20), d being the distance from `line` to the finding's range. */
export function proximity(finding: Pick<Finding, "line" | "endLine">, line: number): number {
  const distance = line < finding.line ? finding.line - line : line > finding.endLine ? line - finding.endLine : 0;
  return 0.5 ** (distance / 20);
}

/** Scores every finding against the alert; only those with confidence > 0, best first. */
export function correlate(alert: Alert, findings: readonly Finding[]): Correlation[] {
  const frames = parseStackTrace(alert.stackTrace);
  const errorWords = new Set(words(alert.errorMessage));
  return findings
    .map((finding) => score(alert, frames, errorWords, finding))
    .filter((c) => c.confidence > 0)
    .sort(
      (x, y) =>
        y.confidence - x.confidence ||
        severityRank(y.finding.severity) - severityRank(x.finding.severity) ||
        (x.finding.id < y.finding.id ? -1 : 1),
    );
}

function score(alert: Alert, frames: readonly StackFrame[], errorWords: ReadonlySet<string>, finding: Finding): Correlation {
  const reasons: string[] = [];
  let a = 0;
  if (pathMatches(finding.filePath, alert.filePath)) {
    if (alert.line > 0) {
      a = 0.4 + 0.6 * proximity(finding, alert.line);
      reasons.push(`in the alert's file; alert line ${alert.line} ${relation(finding, alert.line)}`);
    } else {
      a = 0.4;
      reasons.push("in the alert's file");
    }
  }
  let s = 0;
  let bestFrame: StackFrame | undefined;
  for (const frame of frames) {
    if (!pathMatches(finding.filePath, frame.filePath)) continue;
    const evidence = (0.3 + 0.7 * proximity(finding, frame.line)) * 0.9 ** frame.depth;
    if (evidence > s) [s, bestFrame] = [evidence, frame];
  }
  if (bestFrame) {
    reasons.push(`stack frame #${bestFrame.depth} (${bestFrame.filePath}:${bestFrame.line}) ${relation(finding, bestFrame.line)}`);
  }
  const location = 1 - (1 - a) * (1 - s);
  if (location === 0) return { finding, confidence: 0, reason: "no location evidence" };
  const findingWords = new Set(words(`${finding.issueType} ${finding.ruleId} ${finding.message}`));
  const shared = [...findingWords].filter((w) => errorWords.has(w));
  const text = findingWords.size === 0 ? 0 : shared.length / findingWords.size;
  if (shared.length > 0) reasons.push(`shares words with the error: ${shared.join(", ")}`);
  const confidence = Math.round((0.8 * location + 0.2 * text) * 1000) / 1000;
  return { finding, confidence, reason: reasons.join("; ") };
}

function relation(finding: Finding, line: number): string {
  const range = finding.line === finding.endLine ? `line ${finding.line}` : `lines ${finding.line}-${finding.endLine}`;
  if (line >= finding.line && line <= finding.endLine) return finding.line === finding.endLine ? `is on ${range}` : `is inside ${range}`;
  const distance = line < finding.line ? finding.line - line : line - finding.endLine;
  return `is ${distance} line${distance === 1 ? "" : "s"} from ${range}`;
}

const stopWords = new Set(["the", "and", "for", "not", "with", "from", "this", "that", "was", "are", "has", "have", "error", "line"]);

/** Lowercase words of three letters or more, camelCase and snake_case split, common words dropped. */
export function words(text: string): string[] {
  return text
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length >= 3 && !stopWords.has(w) && !/^\d+$/.test(w));
}
