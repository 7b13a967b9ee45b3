import type { ColumnType } from "kysely";

/** Row type of `operations`. */
export interface OperationTable {
  tenant_id: string;
  id: string;
  kind: string;
  resource: string;
  state: string;
  progress: ColumnType<number, number | undefined, number>;
  stage: ColumnType<string, string | undefined, string>;
  message: ColumnType<string, string | undefined, string>;
  attempt: ColumnType<number, number | undefined, number>;
  /** Written as JSON text, read back parsed. */
  result: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  error: ColumnType<{ code: number; message: string } | null, string | null | undefined, string | null>;
  cancel_requested: ColumnType<boolean, boolean | undefined, boolean>;
  /** The record of a compensated run's compensations (JSON array); null: it never compensated. */
  compensations: ColumnType<Record<string, unknown>[] | null, string | null | undefined, string | null>;
  last_sequence: ColumnType<number, number | undefined, number>;
  version: ColumnType<number, number | undefined, number>;
  create_time: ColumnType<Date, Date | string | undefined, never>;
  update_time: ColumnType<Date, Date | string | undefined, Date | string>;
  start_time: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  end_time: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

/** Row type of `operation_events`: append-only, numbered per operation. */
export interface OperationEventTable {
  tenant_id: string;
  operation_id: string;
  sequence: number;
  time: ColumnType<Date, Date | string | undefined, never>;
  step: string;
  type: string;
  payload: ColumnType<Record<string, unknown>, string, never>;
}
