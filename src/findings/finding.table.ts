import type { ColumnType } from "kysely";

/** Row type of `findings`. */
export interface FindingTable {
  tenant_id: string;
  id: string;
  file_path: string;
  line: number;
  end_line: number;
  /** 1 (info) … 5 (critical); see severityRank in finding.ts. */
  severity: number;
  issue_type: string;
  rule_id: string;
  message: string;
  suggestion: string;
  status: string;
  /** Unique per tenant: a re-reported finding updates its row. */
  fingerprint: string;
  source: string;
  first_seen_time: ColumnType<Date, Date | string | undefined, never>;
  last_seen_time: ColumnType<Date, Date | string | undefined, Date | string>;
  /** Set while the finding is resolved, for the trend of resolved findings. */
  resolve_time: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** Bumped on every change; the etag is derived from it. */
  version: ColumnType<number, number | undefined, number>;
  create_time: ColumnType<Date, Date | string | undefined, never>;
  update_time: ColumnType<Date, Date | string | undefined, Date | string>;
}
