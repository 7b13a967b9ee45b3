import type { UserTable } from "../users/user.table.js";
import type { IdempotencyKeyTable } from "./tables/idempotency-key.table.js";
import type { SettingTable } from "./tables/setting.table.js";

/** Every table, as kysely sees today's schema. Migrations never import this. */
export interface Database {
  users: UserTable;
  idempotency_keys: IdempotencyKeyTable;
  anvil_settings: SettingTable;
}
