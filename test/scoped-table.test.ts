// ScopedTable and its keyset pages, straight over a real database (survivors
// of `npm run mutate` in src/db: every resource lists in one direction, no
// service locks with `get(…, "share")` on users, and none deletes with a stale
// version through the table itself).
import { randomUUID } from "node:crypto";
import type { Kysely, Transaction } from "kysely";
import pg from "pg";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DatabaseHandle, openDatabase } from "../src/db/database.js";
import type { SortKey } from "../src/db/keyset.js";
import { migrateToLatest } from "../src/db/migrator.js";
import type { Database } from "../src/db/schema.js";
import { ScopedTable } from "../src/db/scoped-table.js";
import { AbortedError, NotFoundError } from "../src/shared/errors.js";
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.js";
import { suitePostgres } from "./support/suite-postgres.js";

const silent = pino({ level: "silent" });

async function open(database: TestDatabase): Promise<DatabaseHandle> {
  const handle = await openDatabase(
    database.url ? { kind: "postgres", url: database.url, poolSize: 4, statementTimeoutMs: 10_000 } : { kind: "pglite", dataDir: "memory://" },
    silent,
  );
  await migrateToLatest(handle.db);
  return handle;
}

/** Runs `work` over the users table of `tenant`, in a transaction of its own. */
function users<T>(db: Kysely<Database>, tenant: string, work: (table: ScopedTable<"users">) => Promise<T>): Promise<T> {
  return db.transaction().execute((trx: Transaction<Database>) => work(new ScopedTable(trx, tenant, "users", "user")));
}

/** Inserts users named `names` into `tenant`; e-mails sort in insertion order. */
async function seed(db: Kysely<Database>, tenant: string, names: readonly string[]): Promise<string[]> {
  return users(db, tenant, async (table) => {
    const ids: string[] = [];
    for (const [i, name] of names.entries()) {
      const row = await table.insert({ id: randomUUID(), email: `u${String(i).padStart(2, "0")}@example.com`, display_name: name, state: "active" });
      ids.push(row.id);
    }
    return ids;
  });
}

// Display names repeat, so page boundaries fall inside runs of equal first keys.
const names = ["b", "a", "c", "b", "a", "b", "c", "a", "b"];

describe.each(databaseKinds)("ScopedTable on %s", (kind) => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const tenant = "tenant-a";
  let ids: string[];

  beforeAll(async () => {
    database = await createTestDatabase(kind);
    handle = await open(database);
    ids = await seed(handle.db, tenant, names);
    await seed(handle.db, "tenant-b", ["a", "b", "c"]);
  });
  afterAll(async () => {
    await handle?.close();
    await database?.drop();
  });

  /** Every row of the tenant in `order`, read two at a time, as `name email` strings. */
  async function pages(order: readonly SortKey[]): Promise<string[]> {
    const out: string[] = [];
    let after: unknown[] | undefined;
    for (let guard = 0; guard < 20; guard++) {
      const page = await users(handle.db, tenant, (t) => t.list(order, 2, after));
      out.push(...page.map((r) => `${r.display_name} ${r.email}`));
      if (page.length < 2) return out;
      const last = page.at(-1)! as Record<string, unknown>;
      after = order.map((k) => last[k.column]);
    }
    throw new Error("pages never ended");
  }

  /** The same rows sorted here: names and e-mails are lower-case ASCII, ordered alike by every collation. */
  function sorted(order: readonly SortKey[]): string[] {
    const rows = names.map((name, i) => ({ display_name: name, email: `u${String(i).padStart(2, "0")}@example.com` }));
    const compare = (x: Record<string, string>, y: Record<string, string>) => {
      for (const { column, direction } of order) {
        if (x[column] !== y[column]) return (x[column]! < y[column]! ? -1 : 1) * (direction === "asc" ? 1 : -1);
      }
      return 0;
    };
    return rows.sort(compare).map((r) => `${r.display_name} ${r.email}`);
  }

  /** Pages of `order` read from the database, and the order expected. */
  async function both(order: readonly SortKey[]) {
    return { paged: await pages(order), expected: sorted(order) };
  }
  const asc = (column: string): SortKey => ({ column, direction: "asc" });
  const desc = (column: string): SortKey => ({ column, direction: "desc" });

  it("pages through a mixed-direction order (asc, desc and desc, asc) without skipping or repeating a row", async () => {
    for (const order of [[asc("display_name"), desc("email")], [desc("display_name"), asc("email")]]) {
      const { paged, expected } = await both(order);
      expect(paged).toEqual(expected);
    }
  });

  it("pages through a descending order, one key or two", async () => {
    for (const order of [[desc("display_name"), desc("email")], [desc("email")]]) {
      const { paged, expected } = await both(order);
      expect(paged).toEqual(expected);
    }
  });

  it("lists every row of the tenant, and only of the tenant, when the order has no keys", async () => {
    const rows = await users(handle.db, tenant, (t) => t.list([], 100, []));
    expect(rows.map((r) => r.id).sort()).toEqual([...ids].sort());
  });

  it("narrows a list by its filter", async () => {
    const rows = await users(handle.db, tenant, (t) => t.list([asc("email")], 100, undefined, (q) => q.where("display_name", "=", "c")));
    expect(rows.map((r) => `${r.display_name} ${r.email}`)).toEqual(["c u02@example.com", "c u06@example.com"]);
  });

  it("reads many by id: none for no ids, and only the tenant's rows that exist", async () => {
    expect((await users(handle.db, tenant, (t) => t.getMany([]))).size).toBe(0);
    const [other] = await users(handle.db, "tenant-b", async (t) => (await t.list([asc("email")], 1, undefined)).map((r) => r.id));
    const found = await users(handle.db, tenant, (t) => t.getMany([ids[0]!, ids[1]!, other!, randomUUID()]));
    expect([...found.keys()].sort()).toEqual([ids[0], ids[1]].sort());
  });

  it("deletes only at the expected version: a stale one is ABORTED and keeps the row", async () => {
    const [id] = await seed(handle.db, "tenant-delete", ["x"]);
    await users(handle.db, "tenant-delete", (t) => t.update(id!, { display_name: "y" }, 1));
    const stale = await users(handle.db, "tenant-delete", (t) => t.delete(id!, 1)).catch((err: unknown) => err);
    expect(stale).toBeInstanceOf(AbortedError);
    expect((await users(handle.db, "tenant-delete", (t) => t.get(id!))).display_name).toBe("y");
    const elsewhere = await users(handle.db, tenant, (t) => t.delete(id!, 2)).catch((err: unknown) => err);
    expect(elsewhere).toBeInstanceOf(NotFoundError);
    await users(handle.db, "tenant-delete", (t) => t.delete(id!, 2));
    expect(await users(handle.db, "tenant-delete", (t) => t.get(id!)).catch((err: unknown) => err)).toBeInstanceOf(NotFoundError);
  });
});

describe("ScopedTable row locks (PostgreSQL only: the embedded database runs one transaction at a time)", () => {
  let postgres: Awaited<ReturnType<typeof suitePostgres>>;
  let handle: DatabaseHandle;
  let prober: pg.Client;
  let id: string;

  beforeAll(async () => {
    postgres = await suitePostgres();
    handle = await open(postgres.database);
    id = (await seed(handle.db, "tenant-locks", ["locked"]))[0]!;
    prober = new pg.Client({ connectionString: postgres.database.url });
    await prober.connect();
  });
  afterAll(async () => {
    await prober?.end();
    await handle?.close();
    await postgres?.close();
  });

  /** Which row locks another session could take on the row right now, without waiting. */
  async function othersCould(): Promise<{ update: boolean; share: boolean }> {
    const attempt = async (mode: "update" | "share") => {
      await prober.query("begin");
      try {
        await prober.query(`select id from users where tenant_id = 'tenant-locks' and id = $1 for ${mode} nowait`, [id]);
        return true;
      } catch (err) {
        if ((err as { code?: string }).code === "55P03") return false; // lock_not_available
        throw err;
      } finally {
        await prober.query("rollback");
      }
    };
    return { update: await attempt("update"), share: await attempt("share") };
  }

  /** What others could lock while a transaction holds what `read` read. */
  function whileHeld(read: (table: ScopedTable<"users">) => Promise<unknown>) {
    return users(handle.db, "tenant-locks", async (table) => {
      await read(table);
      return othersCould();
    });
  }

  it("get takes no lock by default, an exclusive one for update, a shared one for share", async () => {
    expect(await whileHeld((t) => t.get(id))).toEqual({ update: true, share: true });
    expect(await whileHeld((t) => t.get(id, "update"))).toEqual({ update: false, share: false });
    expect(await whileHeld((t) => t.get(id, "share"))).toEqual({ update: false, share: true });
    // Locks end with the transaction.
    expect(await othersCould()).toEqual({ update: true, share: true });
  });

  it("getMany takes no lock by default and a shared one for share", async () => {
    expect(await whileHeld((t) => t.getMany([id]))).toEqual({ update: true, share: true });
    expect(await whileHeld((t) => t.getMany([id], "share"))).toEqual({ update: false, share: true });
  });
});
