import type { ColumnType } from "kysely";

/** Row type of `agents`. */
export interface AgentTable {
  tenant_id: string;
  id: string;
  display_name: string;
  model: string;
  instructions: string;
  tools: string[];
  /** Free-form settings, written as JSON text. */
  config: ColumnType<{ [key: string]: unknown }, string, string>;
  state: string;
  /** Bumped on every change; the etag is derived from it. */
  version: ColumnType<number, number | undefined, number>;
  create_time: ColumnType<Date, Date | string | undefined, never>;
  update_time: ColumnType<Date, Date | string | undefined, Date | string>;
}
