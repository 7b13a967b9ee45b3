import type { ColumnType } from "kysely";

/** Row type of `tasks`: the work queue (blocked → queued → leased → done). */
export interface TaskTable {
  tenant_id: string;
  id: string;
  operation_id: string;
  step: string;
  kind: string;
  input: ColumnType<Record<string, unknown>, string, never>;
  state: string;
  outcome: ColumnType<string | null, string | null | undefined, string | null>;
  depends_on: ColumnType<string[], string[] | undefined, never>;
  run_after: ColumnType<Date, Date | string | undefined, Date | string>;
  attempt: ColumnType<number, number | undefined, number>;
  max_attempts: number;
  progress: ColumnType<number, number | undefined, number>;
  result: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  lease_token: ColumnType<string | null, string | null | undefined, string | null>;
  lease_expires_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  lease_ms: ColumnType<number, number | undefined, number>;
  worker_id: ColumnType<string, string | undefined, string>;
  /** The W3C traceparent of the call that started the operation; null when tracing was off. */
  trace_parent: ColumnType<string | null, string | null | undefined, never>;
  /** The step's compensation as JSON ({kind, config, max_attempts}); null: none. */
  compensation: ColumnType<{ kind: string; config: Record<string, unknown>; max_attempts: number } | null, string | null | undefined, never>;
  /** On a compensation task, the task it undoes. */
  compensates: ColumnType<string | null, string | null | undefined, never>;
  version: ColumnType<number, number | undefined, number>;
  create_time: ColumnType<Date, Date | string | undefined, never>;
  update_time: ColumnType<Date, Date | string | undefined, Date | string>;
}
