import type { ColumnType } from "kysely";

/** Row type of `users`. */
export interface UserTable {
  tenant_id: string;
  id: string;
  email: string;
  display_name: string;
  roles: string[];
  state: string;
  /** Bumped on every change; the etag is derived from it. */
  version: ColumnType<number, number | undefined, number>;
  create_time: ColumnType<Date, Date | string | undefined, never>;
  update_time: ColumnType<Date, Date | string | undefined, Date | string>;
}
