import { randomUUID } from "node:crypto";
import type { Selectable, Transaction } from "kysely";
import { SqlState, sqlState } from "../db/database-errors.js";
import { afterKeyset, type SortKey } from "../db/keyset.js";
import type { Database } from "../db/schema.js";
import { staleEtag } from "../shared/etag.js";
import { AlreadyExistsError, NotFoundError } from "../shared/errors.js";
import type { NewUser, User, UserPatch, UserState } from "./user.js";
import type { UserTable } from "./user.table.js";

/** Users are listed oldest first; the id breaks ties between equal times. */
export const userOrder: readonly SortKey[] = [
  { column: "create_time", direction: "asc" },
  { column: "id", direction: "asc" },
];

/** Queries over `users`, always within one transaction and one tenant. */
export class UserRepository {
  constructor(
    readonly trx: Transaction<Database>,
    readonly tenant: string,
  ) {}

  async get(id: string): Promise<User> {
    const row = await this.trx
      .selectFrom("users")
      .selectAll()
      .where("tenant_id", "=", this.tenant)
      .where("id", "=", id)
      .executeTakeFirst();
    if (!row) throw new NotFoundError("user", id);
    return toUser(row);
  }

  /** Up to `limit` users after the keyset position `after` (from the start when absent). */
  async list(limit: number, after?: readonly [createTime: string, id: string]): Promise<User[]> {
    let query = this.trx.selectFrom("users").selectAll().where("tenant_id", "=", this.tenant);
    if (after) query = query.where((eb) => afterKeyset(eb, userOrder, after));
    const rows = await query.orderBy("create_time", "asc").orderBy("id", "asc").limit(limit).execute();
    return rows.map(toUser);
  }

  async create(input: NewUser): Promise<User> {
    try {
      const row = await this.trx
        .insertInto("users")
        .values({
          tenant_id: this.tenant,
          id: randomUUID(),
          email: input.email,
          display_name: input.displayName,
          roles: [...input.roles],
          state: input.state,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toUser(row);
    } catch (err) {
      throw emailTaken(err) ?? err;
    }
  }

  /** Applies `patch`; when `expectedVersion` is given, only to that version. */
  async update(id: string, patch: UserPatch, expectedVersion: number | undefined): Promise<User> {
    let row: Selectable<UserTable> | undefined;
    try {
      let query = this.trx
        .updateTable("users")
        .set((eb) => ({
          ...(patch.email !== undefined && { email: patch.email }),
          ...(patch.displayName !== undefined && { display_name: patch.displayName }),
          ...(patch.roles !== undefined && { roles: [...patch.roles] }),
          ...(patch.state !== undefined && { state: patch.state }),
          version: eb("version", "+", 1),
          update_time: new Date(),
        }))
        .where("tenant_id", "=", this.tenant)
        .where("id", "=", id);
      if (expectedVersion !== undefined) query = query.where("version", "=", expectedVersion);
      row = await query.returningAll().executeTakeFirst();
    } catch (err) {
      throw emailTaken(err) ?? err;
    }
    if (row) return toUser(row);
    throw await this.#whyNoRow(id);
  }

  async delete(id: string, expectedVersion: number | undefined): Promise<void> {
    let query = this.trx.deleteFrom("users").where("tenant_id", "=", this.tenant).where("id", "=", id);
    if (expectedVersion !== undefined) query = query.where("version", "=", expectedVersion);
    const deleted = await query.returning("id").executeTakeFirst();
    if (!deleted) throw await this.#whyNoRow(id);
  }

  /** A conditional write matched nothing: the row is missing, or its version moved on. */
  async #whyNoRow(id: string): Promise<Error> {
    const exists = await this.trx
      .selectFrom("users")
      .select("id")
      .where("tenant_id", "=", this.tenant)
      .where("id", "=", id)
      .executeTakeFirst();
    return exists ? staleEtag() : new NotFoundError("user", id);
  }
}

function emailTaken(err: unknown): AlreadyExistsError | undefined {
  return sqlState(err) === SqlState.uniqueViolation ? new AlreadyExistsError("user", "email") : undefined;
}

function toUser(row: Selectable<UserTable>): User {
  return {
    id: row.id,
    email: row.email,
    displayName: row.display_name,
    roles: row.roles,
    state: row.state as UserState,
    version: row.version,
    createTime: row.create_time,
    updateTime: row.update_time,
  };
}
