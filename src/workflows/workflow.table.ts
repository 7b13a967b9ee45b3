import type { ColumnType } from "kysely";

/** One step as stored in `workflows.steps` (jsonb, snake_case like the API). */
export interface StepRow {
  name: string;
  kind: string;
  config: { [key: string]: unknown };
  depends_on: string[];
  /** Absent when the step declares no compensation (and in revisions written before sagas). */
  compensation?: { kind: string; config: { [key: string]: unknown }; max_attempts: number };
}

/** Row type of `workflows`: the current revision of each workflow. */
export interface WorkflowTable {
  tenant_id: string;
  id: string;
  display_name: string;
  description: string;
  /** Written as JSON text: node-postgres would turn a JS array into a PostgreSQL array. */
  steps: ColumnType<StepRow[], string, string>;
  state: string;
  /** The revision: bumped on every change; the etag is derived from it. */
  version: ColumnType<number, number | undefined, number>;
  create_time: ColumnType<Date, Date | string | undefined, never>;
  update_time: ColumnType<Date, Date | string | undefined, Date | string>;
}

/** Row type of `workflow_revisions`: every revision of every workflow, the current one included. */
export interface WorkflowRevisionTable {
  tenant_id: string;
  workflow_id: string;
  revision: number;
  display_name: string;
  description: string;
  steps: ColumnType<StepRow[], string, never>;
  state: string;
  /** The workflow's creation time. */
  create_time: ColumnType<Date, Date | string, never>;
  /** When this revision was written. */
  update_time: ColumnType<Date, Date | string, never>;
}
