import type { ColumnType } from "kysely";

/**
 * Row type of `idempotency_keys`: one row per `request_id` a tenant used,
 * holding the first response so retries can return it.
 */
export interface IdempotencyKeyTable {
  tenant_id: string;
  request_id: string;
  /** The use case that claimed the key, e.g. `users.create`. */
  operation: string;
  /** Hash of the request, to refuse the same key reused for a different request. */
  request_hash: string;
  response: ColumnType<unknown, string | null | undefined, string>;
  create_time: ColumnType<Date, Date | string | undefined, never>;
}
