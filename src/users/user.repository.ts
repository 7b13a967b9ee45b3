import { randomUUID } from "node:crypto";
import type { Selectable, Transaction } from "kysely";
import { SqlState, sqlState } from "../db/database-errors.js";
import type { SortKey } from "../db/keyset.js";
import type { Database } from "../db/schema.js";
import { ScopedTable } from "../db/scoped-table.js";
import { AlreadyExistsError } from "../shared/errors.js";
import type { NewUser, User, UserPatch, UserState } from "./user.js";
import type { UserTable } from "./user.table.js";

/** Users are listed oldest first; the id breaks ties between equal times. */
export const userOrder: readonly SortKey[] = [
  { column: "create_time", direction: "asc" },
  { column: "id", direction: "asc" },
];

/** Queries over `users`, always within one transaction and one tenant. */
export class UserRepository {
  readonly #table: ScopedTable<"users">;

  constructor(trx: Transaction<Database>, tenant: string) {
    this.#table = new ScopedTable(trx, tenant, "users", "user");
  }

  async get(id: string): Promise<User> {
    return toUser(await this.#table.get(id));
  }

  /** Up to `limit` users after the keyset position `after` ([create_time, id]). */
  async list(limit: number, after: readonly unknown[] | undefined): Promise<User[]> {
    return (await this.#table.list(userOrder, limit, after)).map(toUser);
  }

  async create(input: NewUser): Promise<User> {
    return toUser(
      await emailUnique(() =>
        this.#table.insert({
          id: randomUUID(),
          email: input.email,
          display_name: input.displayName,
          roles: [...input.roles],
          state: input.state,
        }),
      ),
    );
  }

  /** Applies `patch`; when `expectedVersion` is given, only to that version. */
  async update(id: string, patch: UserPatch, expectedVersion: number | undefined): Promise<User> {
    const values = {
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.email !== undefined && { email: patch.email }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.displayName !== undefined && { display_name: patch.displayName }),
      ...(patch.roles !== undefined && { roles: [...patch.roles] }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.state !== undefined && { state: patch.state }),
    };
    return toUser(await emailUnique(() => this.#table.update(id, values, expectedVersion)));
  }

  delete(id: string, expectedVersion: number | undefined): Promise<void> {
    return this.#table.delete(id, expectedVersion);
  }
}

/** Runs a write, reporting a clash on the tenant's unique e-mail index as ALREADY_EXISTS. */
async function emailUnique<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    throw sqlState(err) === SqlState.uniqueViolation ? new AlreadyExistsError("user", "email") : err;
  }
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
