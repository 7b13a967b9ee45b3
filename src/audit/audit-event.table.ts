import type { ColumnType } from "kysely";

/** Row type of `audit_events`: inserted, read and removed by retention, never updated. */
export interface AuditEventTable {
  tenant_id: string;
  id: string;
  time: ColumnType<Date, Date, never>;
  /** `mutation`, `refusal` or `dropped`. */
  kind: string;
  credential_kind: string;
  credential_id: string;
  subject: string;
  /** `package.Service/Method`. */
  method: string;
  protocol: string;
  request_id: string;
  trace_id: string;
  resource_ids: string[];
  /** The call's code (google.rpc.Code; 0 for a change). */
  outcome: number;
  client_address: string;
  user_agent: string;
  /** The request's proto3 JSON without its `debug_redact` fields; null for refusals. */
  parameters: ColumnType<unknown | null, string | null, never>;
  dropped_count: ColumnType<string | number, number | undefined, never>;
}
