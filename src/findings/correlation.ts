import { type Finding, severityRank } from "./finding.js";
import { parseStackTrace, type StackFrame } from "./stack-trace.js";

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

/** A scored finding: confidence in [0, 1] and the evidence in words. */
export interface Correlation {
  readonly finding: Finding;
  readonly confidence: number;
  readonly reason: string;
}

/** Longest file path a finding may have (FindingService's `file_path` rule). */
export const maxFindingPathLength = 1024;

/** Deepest trailing part of a path that is matched against findings' paths. */
export const maxPathSegments = 64;

/**
 * The paths a finding may be stored under to match `path`: the path and
 * every trailing part of it at a `/`, shortest first, up to maxPathSegments
 * segments and maxFindingPathLength characters (no finding's path is
 * longer, so a longer part can never match). Bounded, so a 64 KiB path of
 * `a/a/a/…` yields 64 short strings, not 32,000 long ones.
 */
export function pathSuffixes(path: string): string[] {
  const parts = path.replace(/^\.\//, "").split("/");
  const suffixes: string[] = [];
  let suffix = "";
  for (let i = parts.length - 1; i >= 0 && suffixes.length < maxPathSegments; i--) {
    const part = parts[i]!;
    if (part === "" || part === ".") continue;
    suffix = suffix === "" ? part : `${part}/${suffix}`;
    if (suffix.length > maxFindingPathLength) break;
    suffixes.push(suffix);
  }
  if (path.startsWith("/") && path.length <= maxFindingPathLength) suffixes.push(path);
  return suffixes;
}

/** What an alert says about locations, read once per alert and shared by every candidate finding. */
export interface AlertEvidence {
  readonly frames: readonly StackFrame[];
  /** Every path a finding may have to match the alert's file or a frame's (the keys to fetch candidates by). */
  readonly paths: readonly string[];
  /** Whether a finding path names the alert's file. */
  inAlertFile(findingPath: string): boolean;
  /** The frames in the file a finding path names, innermost first. */
  framesIn(findingPath: string): readonly StackFrame[];
}

/** Parses the stack trace and indexes every path suffix once, so scoring a candidate is a lookup. */
export function readAlert(alert: Alert): AlertEvidence {
  const frames = parseStackTrace(alert.stackTrace);
  const alertFile = new Set(pathSuffixes(alert.filePath));
  const byPath = new Map<string, StackFrame[]>();
  const suffixesOf = new Map<string, string[]>();
  for (const frame of frames) {
    let suffixes = suffixesOf.get(frame.filePath);
    if (!suffixes) suffixesOf.set(frame.filePath, (suffixes = pathSuffixes(frame.filePath)));
    for (const suffix of suffixes) {
      const list = byPath.get(suffix);
      if (list) list.push(frame);
      else byPath.set(suffix, [frame]);
    }
  }
  return {
    frames,
    paths: [...new Set([...alertFile, ...byPath.keys()])],
    inAlertFile: (findingPath) => alertFile.has(findingPath),
    framesIn: (findingPath) => byPath.get(findingPath) ?? [],
  };
}

/** 0.5^(d/20), d being the distance from `line` to the finding's range. */
export function proximity(finding: Pick<Finding, "line" | "endLine">, line: number): number {
  const distance = line < finding.line ? finding.line - line : line > finding.endLine ? line - finding.endLine : 0;
  return 0.5 ** (distance / 20);
}

/** Scores every finding against the alert; only those with confidence > 0, best first. */
export function correlate(alert: Alert, findings: readonly Finding[]): Correlation[] {
  return rank(findings.map(scorer(alert)));
}

/**
 * Scores one finding against the alert (correlate, one finding at a time,
 * for callers that spread many over several turns of the event loop). What
 * depends on the alert alone is computed here, once.
 */
export function scorer(alert: Alert, evidence = readAlert(alert)): (finding: Finding) => Correlation {
  const errorWords = new Set(words(alert.errorMessage));
  return (finding) => score(alert, evidence, errorWords, finding);
}

/** The scored findings with confidence > 0, best first. */
export function rank(scored: readonly Correlation[]): Correlation[] {
  return scored
    .filter((c) => c.confidence > 0)
    .sort(
      (x, y) =>
        y.confidence - x.confidence ||
        severityRank(y.finding.severity) - severityRank(x.finding.severity) ||
        (x.finding.id < y.finding.id ? -1 : 1),
    );
}

function score(alert: Alert, evidence: AlertEvidence, errorWords: ReadonlySet<string>, finding: Finding): Correlation {
  const reasons: string[] = [];
  let a = 0;
  if (evidence.inAlertFile(finding.filePath)) {
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
  for (const frame of evidence.framesIn(finding.filePath)) {
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
