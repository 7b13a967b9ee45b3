import type { KeysetPart, KeysetQuery } from "../shared/keyset-pager.js";
import { InvalidArgumentError } from "../shared/errors.js";
import { type Finding, type FindingStatus, type Severity, severityRank } from "./finding.js";

/** What ListFindings narrows by; every field is optional and they combine with AND. */
export interface FindingFilter {
  readonly filePath?: string | undefined;
  readonly filePathPrefix?: string | undefined;
  readonly minSeverity?: Severity | undefined;
  /** Any of these statuses. */
  readonly statuses?: readonly FindingStatus[] | undefined;
  readonly issueType?: string | undefined;
  /** Last seen at or after. */
  readonly since?: Date | undefined;
  /** Last seen before. */
  readonly until?: Date | undefined;
}

/** The fields findings can be ordered by. */
export type FindingOrderField = "last_seen_time" | "first_seen_time" | "severity" | "file_path";

/** One whitelisted order: a field and a direction. */
export interface FindingOrder {
  readonly field: FindingOrderField;
  readonly direction: "asc" | "desc";
}

interface OrderKeyset {
  /** Columns of the keyset, ending in id so every row has a unique position. */
  readonly columns: readonly string[];
  readonly shape: readonly KeysetPart[];
  keyOf(f: Finding): Array<string | number>;
}

/**
 * The whitelist of orders and, for each, the keyset that pages through it.
 * Every column runs in the order's direction, so one index per field serves
 * both directions (see the findings migration).
 */
export const findingOrderKeysets: Readonly<Record<FindingOrderField, OrderKeyset>> = {
  last_seen_time: {
    columns: ["last_seen_time", "id"],
    shape: ["timestamp", "uuid"],
    keyOf: (f) => [f.lastSeenTime.toISOString(), f.id],
  },
  first_seen_time: {
    columns: ["first_seen_time", "id"],
    shape: ["timestamp", "uuid"],
    keyOf: (f) => [f.firstSeenTime.toISOString(), f.id],
  },
  severity: {
    columns: ["severity", "last_seen_time", "id"],
    shape: ["integer", "timestamp", "uuid"],
    keyOf: (f) => [severityRank(f.severity), f.lastSeenTime.toISOString(), f.id],
  },
  file_path: {
    columns: ["file_path", "line", "id"],
    shape: ["string", "integer", "uuid"],
    keyOf: (f) => [f.filePath, f.line, f.id],
  },
};

/** The order when the client names none: most recently seen first. */
export const defaultFindingOrder: FindingOrder = { field: "last_seen_time", direction: "desc" };

/**
 * Parses `order_by` ("severity desc", "file_path", …) against the whitelist;
 * anything else is INVALID_ARGUMENT listing what is accepted.
 */
export function parseFindingOrder(orderBy: string): FindingOrder {
  const text = orderBy.trim();
  if (text === "") return defaultFindingOrder;
  const match = /^([a-z_]+)(?:\s+(asc|desc))?$/i.exec(text);
  const field = match?.[1]?.toLowerCase();
  if (!match || field === undefined || !Object.hasOwn(findingOrderKeysets, field)) {
    const accepted = Object.keys(findingOrderKeysets).join(", ");
    throw InvalidArgumentError.field("order_by", `must be one of ${accepted}, optionally followed by asc or desc`);
  }
  return { field: field as FindingOrderField, direction: (match[2]?.toLowerCase() ?? "asc") as "asc" | "desc" };
}

/** Checks filter combinations the proto rules cannot express. */
export function checkFindingFilter(filter: FindingFilter): void {
  if (filter.filePath && filter.filePathPrefix) {
    throw InvalidArgumentError.field("file_path_prefix", "cannot be combined with file_path");
  }
  if (filter.since && filter.until && filter.until <= filter.since) {
    throw InvalidArgumentError.field("until", "must be after since");
  }
}

/**
 * How a filtered, ordered listing pages. The query identity writes every
 * filter and the order canonically (fixed key order, sorted statuses), so a
 * page token only continues the listing it came from.
 */
export function findingListQuery(filter: FindingFilter, order: FindingOrder): KeysetQuery<Finding> {
  const keyset = findingOrderKeysets[order.field];
  const identity = {
    order: `${order.field} ${order.direction}`,
    filePath: filter.filePath ?? null,
    filePathPrefix: filter.filePathPrefix ?? null,
    minSeverity: filter.minSeverity ?? null,
    statuses: filter.statuses ? [...new Set(filter.statuses)].sort() : null,
    issueType: filter.issueType ?? null,
    since: filter.since?.toISOString() ?? null,
    until: filter.until?.toISOString() ?? null,
  };
  return { query: `findings ${JSON.stringify(identity)}`, shape: keyset.shape, keyOf: keyset.keyOf };
}
