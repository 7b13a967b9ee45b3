import { Finding_Severity, Finding_Status } from "../../gen/anvil/findings/v1/findings_pb.js";

/** Severities from most to least severe, with the words a person reads (colour only repeats them). */
export const severities: ReadonlyArray<{ value: Finding_Severity; label: string; tone: string }> = [
  { value: Finding_Severity.CRITICAL, label: "Critical", tone: "critical" },
  { value: Finding_Severity.HIGH, label: "High", tone: "high" },
  { value: Finding_Severity.MEDIUM, label: "Medium", tone: "medium" },
  { value: Finding_Severity.LOW, label: "Low", tone: "low" },
  { value: Finding_Severity.INFO, label: "Info", tone: "info" },
];

export const statuses: ReadonlyArray<{ value: Finding_Status; label: string }> = [
  { value: Finding_Status.OPEN, label: "Open" },
  { value: Finding_Status.ACKNOWLEDGED, label: "Acknowledged" },
  { value: Finding_Status.RESOLVED, label: "Resolved" },
  { value: Finding_Status.FALSE_POSITIVE, label: "False positive" },
];

export function severityLabel(s: Finding_Severity): string {
  return severities.find((x) => x.value === s)?.label ?? "Unspecified";
}

export function statusLabel(s: Finding_Status): string {
  return statuses.find((x) => x.value === s)?.label ?? "Unspecified";
}

/** The orders ListFindings offers (`order_by`). */
export const orders: ReadonlyArray<{ value: string; label: string }> = [
  { value: "last_seen_time desc", label: "Last seen, newest first" },
  { value: "last_seen_time asc", label: "Last seen, oldest first" },
  { value: "first_seen_time desc", label: "First seen, newest first" },
  { value: "severity desc", label: "Most severe first" },
  { value: "severity asc", label: "Least severe first" },
  { value: "file_path asc", label: "File path A→Z" },
  { value: "file_path desc", label: "File path Z→A" },
];

/** How often the dashboard refetches: findings have no stream, so a short interval keeps it live. */
export const findingsRefreshMs = 2_000;
