// Edges of src/db that the db group's run after test/db-edges.test.ts left
// (mutation/incremental/db.json): which query errors retire a pooled
// connection, a statement prepared before the per-connection limit, the
// unit of work's deadline at its boundaries and while it waits for a
// connection, a read's repositories after the read, and the session lock's
// connection when the server ends it, and the keyset condition of an order
// whose keys all sort one way. A file of its own: `npm run mutate`
// retests every mutant a changed test file killed.
import { randomUUID } from "node:crypto";
import net from "node:net";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type DatabaseHandle, openDatabase } from "../src/db/database.js";
import { FencedPgPool } from "../src/db/fenced-pg-pool.js";
import { afterKeyset } from "../src/db/keyset.js";
import { migrateToLatest } from "../src/db/migrator.js";
import { PgSessionLock } from "../src/db/session-lock.js";
import { UnitOfWork } from "../src/db/unit-of-work.js";
import { DeadlineExceededError, InternalError } from "../src/shared/errors.js";
import type { NewUser } from "../src/users/user.js";
import { captureLog } from "./support/log-capture.js";
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.js";
import { postgresWithAdmin } from "./support/suite-postgres.js";

const silent = pino({ level: "silent" });
const newUser = (label: string): NewUser => ({ email: `${label}-${randomUUID()}@example.com`, displayName: label, roles: [], state: "active" });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether `promise` has settled within `ms` (it keeps running either way). */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(ms);
  return settled;
}

describe.each(databaseKinds)("the unit of work's deadline and a read's repositories on %s", (kind) => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let statements: string[];
  beforeAll(async () => {
    database = await createTestDatabase(kind);
    statements = [];
    // One connection (the embedded database has only one): a test holds it to make the next unit of work wait.
    handle = await openDatabase(
      database.url ? { kind: "postgres", url: database.url, poolSize: 1, statementTimeoutMs: 10_000 } : { kind: "pglite", dataDir: "memory://", seed: process.env.ANVIL_PGLITE_SEED },
      silent,
      (name) => statements.push(name),
    );
    await migrateToLatest(handle.db);
  });
  afterAll(async () => {
    await handle?.close();
    await database?.drop();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** Holds the database's only connection in a transaction until `release()` is called. */
  async function holdConnection() {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let holding!: () => void;
    const held = new Promise<void>((resolve) => (holding = resolve));
    const done = new UnitOfWork(handle.db).transact({ tenant: "acme" }, async () => {
      holding();
      await released;
    });
    await held;
    return { release: () => (release(), done) };
  }

  it("refuses a deadline that is exactly now before it takes a connection", async () => {
    const uow = new UnitOfWork(handle.db);
    const holder = await holdConnection();
    try {
      // The clock stands still for the call: its deadline is neither ahead nor behind.
      const now = Date.now();
      vi.spyOn(Date, "now").mockReturnValue(now);
      const call = uow.transact({ tenant: "acme", deadline: now }, async () => "ran");
      call.catch(() => undefined);
      // Refused at once, without queueing for the connection the holder has.
      expect(await settledWithin(call, 300)).toBe(true);
      await expect(call).rejects.toBeInstanceOf(DeadlineExceededError);
    } finally {
      vi.restoreAllMocks();
      await holder.release();
    }
  });

  it("refuses work whose deadline passed while it waited for a connection, without running it", async () => {
    const uow = new UnitOfWork(handle.db);
    const holder = await holdConnection();
    let ran = false;
    const call = uow.transact({ tenant: "acme", deadline: Date.now() + 100 }, async () => {
      ran = true;
      return "ran";
    });
    call.catch(() => undefined);
    await sleep(300);
    await holder.release();
    await expect(call).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(ran).toBe(false);
  });

  it("refuses work whose deadline came exactly as it got its connection, without running it", async () => {
    const uow = new UnitOfWork(handle.db);
    const holder = await holdConnection();
    const start = Date.now();
    const clock = vi.spyOn(Date, "now").mockReturnValue(start);
    let ran = false;
    const call = uow.transact({ tenant: "acme", deadline: start + 1_000 }, async () => {
      ran = true;
      return "ran";
    });
    call.catch(() => undefined);
    // While it waits, the clock reaches the deadline to the millisecond.
    clock.mockReturnValue(start + 1_000);
    try {
      await holder.release();
      await expect(call).rejects.toBeInstanceOf(DeadlineExceededError);
      expect(ran).toBe(false);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it("closes a read's repositories once the read returns", async () => {
    const uow = new UnitOfWork(handle.db);
    const created = await uow.transact({ tenant: "acme" }, (tx) => tx.users.create(newUser("read")));
    const kept = await uow.read({ tenant: "acme" }, async (tx) => {
      expect((await tx.users.get(created.id)).id).toBe(created.id);
      return tx;
    });
    await expect(Promise.resolve().then(() => kept.users.get(created.id))).rejects.toBeInstanceOf(InternalError);
  });
});

describe("FencedPgPool and PgSessionLock edges (PostgreSQL only)", () => {
  const kind = databaseKinds.includes("postgres") ? "postgres" : "pglite";
  let url: string;
  let admin: pg.Client;
  postgresWithAdmin((db) => ({ url, admin } = db), kind === "postgres");
  const pools: pg.Pool[] = [];
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  });
  const fenced = (config: pg.PoolConfig = {}) => {
    const pool = new pg.Pool({ connectionString: url, max: 1, ...config });
    pools.push(pool);
    return { pool, fenced: new FencedPgPool(pool) };
  };

  it.runIf(kind === "postgres")("keeps a connection whose query failed client-side without a SQLSTATE, when that is no timeout (PostgreSQL only)", async () => {
    const { pool, fenced: f } = fenced();
    const c = await f.connect();
    const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
    // A value node-postgres cannot serialize fails the query before the server sees a row of it.
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const err = await c.query("select $1::jsonb as j", [circular]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect(err).not.toHaveProperty("code");
    expect((await c.query("select pg_backend_pid() as pid")).rows[0].pid).toBe(pid);
    c.release();
    expect(pool.totalCount).toBe(1);
  });

  it.runIf(kind === "postgres")("runs a statement prepared before the 200th by its name after the limit is reached (PostgreSQL only)", async () => {
    const c = await fenced().fenced.connect();
    try {
      const first = "select $1::int + 0 as n";
      for (let i = 0; i < 200; i++) await c.query(`select $1::int + ${i} as n`, [1]);
      const runs = async () =>
        (await c.query("select generic_plans + custom_plans as runs from pg_prepared_statements where statement = $1", [first])).rows[0]?.runs as
          | string
          | undefined;
      const before = Number(await runs());
      expect((await c.query(first, [7])).rows).toEqual([{ n: 7 }]);
      expect(Number(await runs())).toBe(before + 1);
    } finally {
      c.release();
    }
  });

  it.runIf(kind === "postgres")("bounds the index scan by every key of an order whose keys all sort one way (PostgreSQL only)", async () => {
    const table = `keyset_${randomUUID().replaceAll("-", "")}`;
    await admin.query(`create table ${table} (a int not null, b int not null)`);
    await admin.query(`insert into ${table} select i % 10, i from generate_series(1, 20000) i`);
    await admin.query(`create index on ${table} (a, b)`);
    await admin.query(`analyze ${table}`);
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    pools.push(pool);
    const db = new Kysely<Record<string, { a: number; b: number }>>({ dialect: new PostgresDialect({ pool }) });
    for (const direction of ["asc", "desc"] as const) {
      const keys = [
        { column: "a", direction },
        { column: "b", direction },
      ];
      const plan = (
        await db
          .selectFrom(table)
          .selectAll()
          .where((eb) => afterKeyset(eb, keys, [5, 10_000]))
          .orderBy("a", direction)
          .orderBy("b", direction)
          .limit(10)
          .explain()
      )
        .map((row) => String(row["QUERY PLAN"]))
        .join("\n");
      // A row comparison: the scan starts right after (5, 10000), where the expanded form would start at a = 5 and filter its rows.
      expect(plan, plan).toMatch(/Index Cond: \(ROW\(a, b\) [<>] ROW\(5, 10000\)\)/);
      expect(plan, plan).not.toContain("Filter");
    }
  });

  it.runIf(kind === "postgres")("lets go of its connection when the server ends it, and takes the free lock anew at the next acquire (PostgreSQL only)", async () => {
    const name = `lock-${randomUUID()}`;
    const lock = new PgSessionLock(url, name, captureLog().log);
    try {
      expect(await lock.acquire()).toBe(true);
      await admin.query(
        "select pg_terminate_backend(pid, 5000) from pg_stat_activity where datname = current_database() and application_name = 'anvil-session-lock'",
      );
      // The client hears of it at once (the server says so before it closes); give its error event a moment.
      await sleep(500);
      expect(await lock.acquire()).toBe(true);
    } finally {
      await lock.release();
    }
  });

  it.runIf(kind === "postgres")("keeps its lock's connection alive with TCP keepalive (PostgreSQL only)", async () => {
    const keepAlive = vi.spyOn(net.Socket.prototype, "setKeepAlive");
    const lock = new PgSessionLock(url, `lock-${randomUUID()}`, captureLog().log);
    try {
      expect(await lock.acquire()).toBe(true);
      expect(keepAlive.mock.calls.map((call) => call[0])).toContain(true);
    } finally {
      keepAlive.mockRestore();
      await lock.release();
    }
  });
});
