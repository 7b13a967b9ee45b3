import { type CompiledQuery, type Kysely, type Selectable, type Transaction } from "kysely";
import { staleEtag } from "../shared/etag.js";
import { NotFoundError } from "../shared/errors.js";
import { runCompiled } from "./compiled-once.js";
import { afterKeyset, type SortKey } from "./keyset.js";
import type { Database } from "./schema.js";

/** The compiled `get` per "table lock" (its parameters left out). */
const compiledGets = new Map<string, CompiledQuery>();

/** Tables of resources: tenant-scoped, identified by `id`, versioned for etags. */
export type ResourceTable = {
  [T in keyof Database]: Database[T] extends { tenant_id: string; id: string; version: unknown } ? T : never;
}[keyof Database];

/**
 * The queries every resource table shares, always filtered by the tenant:
 * fetch by id (NOT_FOUND otherwise), keyset pages, and conditional update and
 * delete that bump the version and report a stale etag as ABORTED. Resource
 * repositories compose one of these and add their own queries; none repeats
 * the scoping, the etag rule or the keyset logic.
 */
export class ScopedTable<T extends ResourceTable> {
  // kysely cannot type a query over a table chosen by a type parameter; the
  // public methods below restore the row type.
  readonly #db: Kysely<any>;
  readonly #name: string;

  constructor(
    trx: Transaction<Database>,
    readonly tenant: string,
    readonly table: T,
    /** Resource name used in NOT_FOUND errors, e.g. "user". */
    readonly resource: string,
  ) {
    this.#db = trx as unknown as Kysely<any>;
    this.#name = table;
  }

  /** The row, or NOT_FOUND. `lock` takes a row lock until the transaction ends. */
  // Stryker disable next-line StringLiteral: equivalent: any default other than "update" or "share" builds the same unlocked statement
  async get(id: string, lock: "none" | "update" | "share" = "none"): Promise<Selectable<Database[T]>> {
    // The most frequent statement of all, with one text per table and lock:
    // built and compiled once, then only its parameters change.
    const key = `${this.#name} ${lock}`;
    let compiled = compiledGets.get(key);
    // Stryker disable next-line ConditionalExpression: equivalent when always true: building again yields the same statement (the cache saves only the build)
    if (compiled === undefined) {
      // Parameters in this order: $1 the tenant, $2 the id.
      let query = this.#db.selectFrom(this.#name).selectAll().where("tenant_id", "=", this.tenant).where("id", "=", id);
      if (lock === "update") query = query.forUpdate();
      if (lock === "share") query = query.forShare();
      compiled = { ...query.compile(), parameters: [] };
      compiledGets.set(key, compiled);
    }
    const { rows } = await runCompiled(this.#db, compiled, [this.tenant, id]);
    const row = rows[0];
    if (!row) throw new NotFoundError(this.resource, id);
    return row as Selectable<Database[T]>;
  }

  /** Rows of the tenant for ids that exist, keyed by id (missing ids are absent). */
  // Stryker disable next-line StringLiteral: equivalent: any default other than "share" reads without a lock
  async getMany(ids: readonly string[], lock: "none" | "share" = "none"): Promise<Map<string, Selectable<Database[T]>>> {
    if (ids.length === 0) return new Map();
    let query = this.#db.selectFrom(this.#name).selectAll().where("tenant_id", "=", this.tenant).where("id", "in", [...ids]);
    if (lock === "share") query = query.forShare();
    const rows = (await query.execute()) as Array<Selectable<Database[T]> & { id: string }>;
    return new Map(rows.map((r) => [r.id, r]));
  }

  /** Inserts one row for the tenant and returns it as stored. */
  async insert(values: Record<string, unknown>): Promise<Selectable<Database[T]>> {
    const row = await this.#db
      .insertInto(this.#name)
      .values({ ...values, tenant_id: this.tenant })
      .returningAll()
      .executeTakeFirstOrThrow();
    return row as Selectable<Database[T]>;
  }

  /**
   * Up to `limit` rows in `order`, after the keyset position `after`;
   * `where` narrows the rows (filters are bound parameters).
   */
  async list(
    order: readonly SortKey[],
    limit: number,
    after: readonly unknown[] | undefined,
    where?: (query: any) => any,
  ): Promise<Array<Selectable<Database[T]>>> {
    let query = this.#db.selectFrom(this.#name).selectAll().where("tenant_id", "=", this.tenant);
    if (where) query = where(query);
    if (after) query = query.where((eb) => afterKeyset(eb, order, after));
    for (const key of order) query = query.orderBy(key.column, key.direction);
    return (await query.limit(limit).execute()) as Array<Selectable<Database[T]>>;
  }

  /**
   * Sets `values` and bumps the version, only if the row is at
   * `expectedVersion` when one is given. NOT_FOUND or ABORTED otherwise.
   */
  async update(id: string, values: Record<string, unknown>, expectedVersion: number | undefined): Promise<Selectable<Database[T]>> {
    let query = this.#db
      .updateTable(this.#name)
      .set((eb) => ({ ...values, version: eb("version", "+", 1), update_time: new Date() }))
      .where("tenant_id", "=", this.tenant)
      .where("id", "=", id);
    if (expectedVersion !== undefined) query = query.where("version", "=", expectedVersion);
    const row = await query.returningAll().executeTakeFirst();
    if (row) return row as Selectable<Database[T]>;
    throw await this.#whyNoRow(id);
  }

  /** Deletes the row, only at `expectedVersion` when one is given. NOT_FOUND or ABORTED otherwise. */
  async delete(id: string, expectedVersion: number | undefined): Promise<void> {
    let query = this.#db.deleteFrom(this.#name).where("tenant_id", "=", this.tenant).where("id", "=", id);
    if (expectedVersion !== undefined) query = query.where("version", "=", expectedVersion);
    const deleted = await query.returning("id").executeTakeFirst();
    if (!deleted) throw await this.#whyNoRow(id);
  }

  /** A conditional write matched nothing: the row is missing, or its version moved on. */
  async #whyNoRow(id: string): Promise<Error> {
    const exists = await this.#db
      .selectFrom(this.#name)
      .select("id")
      .where("tenant_id", "=", this.tenant)
      .where("id", "=", id)
      .executeTakeFirst();
    return exists ? staleEtag() : new NotFoundError(this.resource, id);
  }
}
