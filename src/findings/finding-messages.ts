import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Finding as FindingMessage,
  FindingSchema,
  type Finding_Severity,
  type Finding_Status,
} from "../../gen/anvil/findings/v1/findings_pb.js";
import { etagOf } from "../shared/etag.js";
import { type Finding, type FindingStatus, findingStatuses, type NewFinding, type Severity, severities, severityRank } from "./finding.js";

// The proto enums number severities and statuses in the domain's order from
// 1; 0 is the proto's "unspecified".

/** The domain severity, or undefined for SEVERITY_UNSPECIFIED (or an unknown number). */
export function severityFromMessage(value: Finding_Severity): Severity | undefined {
  return severities[value - 1];
}

export function severityToMessage(severity: Severity): Finding_Severity {
  return severityRank(severity) as Finding_Severity;
}

/** The domain status, or undefined for STATUS_UNSPECIFIED (or an unknown number). */
export function statusFromMessage(value: Finding_Status): FindingStatus | undefined {
  return findingStatuses[value - 1];
}

export function statusToMessage(status: FindingStatus): Finding_Status {
  return (findingStatuses.indexOf(status) + 1) as Finding_Status;
}

/** The domain input of a reported finding; the field rules have already checked the message. */
export function newFindingFromMessage(m: FindingMessage): NewFinding {
  return {
    filePath: m.filePath,
    line: m.line,
    // 0 is proto's "unset": a one-line finding.
    endLine: m.endLine || m.line,
    severity: severityFromMessage(m.severity) ?? "info",
    issueType: m.issueType,
    ruleId: m.ruleId,
    message: m.message,
    suggestion: m.suggestion,
    status: statusFromMessage(m.status) ?? "open",
    fingerprint: m.fingerprint || undefined,
    source: m.source,
  };
}

export function findingToMessage(f: Finding): FindingMessage {
  return create(FindingSchema, {
    id: f.id,
    filePath: f.filePath,
    line: f.line,
    endLine: f.endLine,
    severity: severityToMessage(f.severity),
    issueType: f.issueType,
    ruleId: f.ruleId,
    message: f.message,
    suggestion: f.suggestion,
    status: statusToMessage(f.status),
    fingerprint: f.fingerprint,
    source: f.source,
    firstSeenTime: timestampFromDate(f.firstSeenTime),
    lastSeenTime: timestampFromDate(f.lastSeenTime),
    etag: etagOf(f.version),
    createTime: timestampFromDate(f.createTime),
    updateTime: timestampFromDate(f.updateTime),
    resolveTime: f.resolveTime ? timestampFromDate(f.resolveTime) : undefined,
  });
}


