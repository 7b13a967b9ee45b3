import { FailedPreconditionError } from "../shared/errors.js";

/** Severities, least severe first; their position + 1 is the stored rank. */
export const severities = ["info", "low", "medium", "high", "critical"] as const;
export type Severity = (typeof severities)[number];

/** Triage states of a finding. */
export const findingStatuses = ["open", "acknowledged", "resolved", "false_positive"] as const;
export type FindingStatus = (typeof findingStatuses)[number];

/** What a finding says about the code: everything its reporter decides. */
interface FindingFields {
  readonly filePath: string;
  readonly line: number;
  readonly endLine: number;
  readonly severity: Severity;
  readonly issueType: string;
  readonly ruleId: string;
  readonly message: string;
  readonly suggestion: string;
  readonly status: FindingStatus;
  readonly source: string;
}

/** A code-quality finding of a tenant, as the domain sees it. */
export interface Finding extends FindingFields {
  readonly id: string;
  readonly fingerprint: string;
  readonly firstSeenTime: Date;
  readonly lastSeenTime: Date;
  /** Set while the status is resolved. */
  readonly resolveTime: Date | undefined;
  readonly version: number;
  readonly createTime: Date;
  readonly updateTime: Date;
}

/** What a reporter sends when creating a finding. */
export interface NewFinding extends FindingFields {
  /** Derived from the other fields when not given (see fingerprint.ts). */
  readonly fingerprint: string | undefined;
}

/** The fields an update may change; absent fields stay as they are. */
export type FindingPatch = Partial<Pick<NewFinding, "status" | "severity" | "issueType" | "suggestion">>;

/**
 * The field-mask paths an update accepts. Location, message, rule and source
 * are immutable because the fingerprint — the finding's identity across
 * analyzer runs — is derived from them.
 */
export const updatableFindingFields = {
  status: "status",
  severity: "severity",
  issue_type: "issueType",
  suggestion: "suggestion",
} as const satisfies Record<string, keyof FindingPatch>;

/** Stored rank of a severity: 1 (info) … 5 (critical), so SQL can order and compare it. */
export function severityRank(severity: Severity): number {
  return severities.indexOf(severity) + 1;
}

/** The severity of a stored rank. */
export function severityOfRank(rank: number): Severity {
  const severity = severities[rank - 1];
  if (severity === undefined) throw new RangeError(`no severity has rank ${rank}`);
  return severity;
}

/**
 * Where each status may go. Resolved and false-positive findings can only
 * be reopened: going straight from "fixed" to "not an issue" (or back to
 * merely acknowledged) would rewrite history that the trend already counted.
 * Staying in the same status is always allowed.
 */
export const statusTransitions: Readonly<Record<FindingStatus, readonly FindingStatus[]>> = {
  open: ["acknowledged", "resolved", "false_positive"],
  acknowledged: ["open", "resolved", "false_positive"],
  resolved: ["open"],
  false_positive: ["open"],
};

/** Throws FAILED_PRECONDITION unless `from → to` is an allowed transition. */
export function checkTransition(id: string, from: FindingStatus, to: FindingStatus): void {
  if (from === to || statusTransitions[from].includes(to)) return;
  throw new FailedPreconditionError(`a ${from} finding cannot become ${to}`, [
    {
      type: "INVALID_STATUS_TRANSITION",
      subject: `findings/${id}`,
      description: `status ${from} may change to ${statusTransitions[from].join(", ")}, not ${to}`,
    },
  ]);
}

/**
 * When the finding counts as resolved after moving to `to`: from now when it
 * becomes resolved, kept while it stays resolved, cleared when it leaves.
 */
export function resolveTimeAfter(current: Pick<Finding, "status" | "resolveTime">, to: FindingStatus, now: Date): Date | undefined {
  if (to !== "resolved") return undefined;
  return current.status === "resolved" ? current.resolveTime : now;
}

/** Rule checks spanning fields (single-field rules live in the proto): the violated field, if any. */
export function findingViolation(finding: NewFinding): { field: string; description: string } | undefined {
  if (finding.endLine < finding.line) return { field: "end_line", description: "must not be before line" };
  return undefined;
}
