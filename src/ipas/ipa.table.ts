import type { ColumnType } from "kysely";

/** Row type of `ipas`. */
export interface IpaTable {
  tenant_id: string;
  id: string;
  display_name: string;
  workflow_id: string;
  /** Step name → agent id, written as JSON text. */
  agent_bindings: ColumnType<Record<string, string>, string, string>;
  /** The bound agent ids again, as an array under a GIN index: "which deployed IPAs use agent X" is one indexed query. */
  agent_ids: string[];
  state: string;
  deployed_revision: number | null;
  /** Bumped on every change; the etag is derived from it. */
  version: ColumnType<number, number | undefined, number>;
  create_time: ColumnType<Date, Date | string | undefined, never>;
  update_time: ColumnType<Date, Date | string | undefined, Date | string>;
}
