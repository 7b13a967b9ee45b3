import type { ColumnType } from "kysely";

/** Row type of `api_keys`. */
export interface ApiKeyTable {
  tenant_id: string;
  id: string;
  display_name: string;
  roles: string[];
  tier: string;
  /** `active` or `revoked`; expiry is derived from `expire_time`. */
  state: string;
  /** SHA-256 of the secret; the secret itself is never stored. */
  secret_hash: Buffer;
  creator: string;
  expire_time: Date | null;
  last_used_time: ColumnType<Date | null, Date | string | null | undefined, Date | string>;
  /** Bumped on every change; the etag is derived from it. */
  version: ColumnType<number, number | undefined, number>;
  create_time: ColumnType<Date, Date | string | undefined, never>;
  update_time: ColumnType<Date, Date | string | undefined, Date | string>;
}
