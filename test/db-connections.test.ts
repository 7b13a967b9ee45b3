// The connections under the unit of work, straight (survivors of `npm run
// mutate` in src/db: the end-to-end suites open them while their gateways
// start, where nothing is a test's, and never lose, fence or queue one on
// purpose): the embedded database's one connection, the PostgreSQL pool's
// prepared statements and fencing, the session lock and the listening
// connection, and what openDatabase wires around them.
import { createHash, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AfterCommitAnnouncer } from "../src/db/after-commit-announcer.js";
import { openDatabase } from "../src/db/database.js";
import { FencedPgPool } from "../src/db/fenced-pg-pool.js";
import { PgNotificationListener } from "../src/db/pg-notification-listener.js";
import { PGlitePool } from "../src/db/pglite-pool.js";
import { PgSessionLock, processLock } from "../src/db/session-lock.js";
import { UnavailableError } from "../src/shared/errors.js";
import { captureLog } from "./support/log-capture.js";
import { postgresWithAdmin } from "./support/suite-postgres.js";

const seeded = () => {
  const seed = process.env.ANVIL_PGLITE_SEED;
  return PGlite.create(seed === undefined ? {} : { loadDataDir: new Blob([readFileSync(seed)]) });
};

/** Resolves once `check` holds, polling every 10 ms; fails after 5 s (what it waits for takes milliseconds). */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (const started = performance.now(); !(await check()); ) {
    if (performance.now() - started > 5_000) throw new Error(`never ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** One turn of the event loop: what is ready has run. */
const turn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * `promise`, or a failure after 5 s: what a test waits for either comes at
 * once or never (a broken queue), and a test that fails says so sooner than
 * one that hangs until its timeout.
 */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within 5 s`)), 5_000)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe("PGlitePool (the embedded database's one connection)", () => {
  let pool: PGlitePool;
  beforeAll(async () => {
    pool = new PGlitePool(await seeded());
    const c = await pool.connect();
    await c.query("create table t (id int primary key, v text)");
    c.release();
  });
  afterAll(() => pool?.end());

  it("reports what a statement did as node-postgres does, past leading comments and in any case", async () => {
    const c = await within(pool.connect(), "the connection");
    try {
      expect(await c.query("/* t.insert */ insert into t values ($1, $2), ($3, $4)", [1, "a", 2, "b"])).toEqual({ command: "INSERT", rowCount: 2, rows: [] });
      expect(await c.query("-- a line comment\n  Update t set v = 'c' where id = 1")).toEqual({ command: "UPDATE", rowCount: 1, rows: [] });
      expect(await c.query("/* several\n lines */ /* and another */\n DELETE from t where id = 2 returning id")).toEqual({ command: "DELETE", rowCount: 1, rows: [{ id: 2 }] });
      expect(await c.query("merge into t using (select 3 as id) s on t.id = s.id when not matched then insert values (3, 'm')")).toMatchObject({ command: "MERGE", rowCount: 1 });
      expect(await c.query("/* t.touch */ with x as (update t set v = 'w' returning id) select id from x order by id")).toMatchObject({ command: "UPDATE", rows: [{ id: 1 }, { id: 3 }] });
      expect(await c.query("select id from t order by id")).toMatchObject({ command: "SELECT", rows: [{ id: 1 }, { id: 3 }] });
      expect(await c.query("(select id from t where id = 1)")).toMatchObject({ command: "SELECT", rows: [{ id: 1 }] });
      const updated = await c.query("/**/update t set v = 'z'");
      expect(updated).toEqual({ command: "UPDATE", rowCount: 2, rows: [] });
    } finally {
      c.release();
    }
  });

  it("hands its one connection to one caller at a time, in the order they asked, counting who waits", async () => {
    expect(pool.stats()).toEqual({ total: 1, idle: 1, waiting: 0 });
    const first = await within(pool.connect(), "the first caller's connection");
    expect(pool.stats()).toEqual({ total: 1, idle: 0, waiting: 0 });
    const order: string[] = [];
    const second = pool.connect().then((c) => (order.push("second"), c));
    const third = pool.connect().then((c) => (order.push("third"), c));
    expect(pool.stats()).toEqual({ total: 1, idle: 0, waiting: 2 });
    await turn();
    expect(order).toEqual([]);
    first.release();
    const held = await within(second, "the second caller's connection");
    expect(order).toEqual(["second"]);
    expect(pool.stats()).toEqual({ total: 1, idle: 0, waiting: 1 });
    // A second release of the first connection frees nothing: the second caller holds it.
    first.release();
    await turn();
    expect(order).toEqual(["second"]);
    expect(pool.stats()).toEqual({ total: 1, idle: 0, waiting: 1 });
    held.release();
    (await within(third, "the third caller's connection")).release();
    expect(order).toEqual(["second", "third"]);
    expect(pool.stats()).toEqual({ total: 1, idle: 1, waiting: 0 });
  });

  it("ends after the connection's holder releases it, and refuses new callers at once", async () => {
    const db = await seeded();
    const own = new PGlitePool(db);
    const c = await within(own.connect(), "the connection");
    let ended = false;
    const ending = own.end().then(() => (ended = true));
    await expect(own.connect()).rejects.toThrow("embedded database is closed");
    await turn();
    expect(ended).toBe(false);
    expect(await c.query("select 1 as one")).toMatchObject({ rows: [{ one: 1 }] });
    c.release();
    await within(ending, "the end");
    expect(db.closed).toBe(true);
  });
});

describe("openDatabase on the embedded database", () => {
  it("keeps a data directory on disk, creating it, and tells the observer every statement by name", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "anvil-pglite-")), "nested", "data");
    const seen: Array<[string, boolean]> = [];
    try {
      const target = { kind: "pglite", dataDir: dir } as const;
      const handle = await openDatabase(target, captureLog().log, (name, seconds, failed) => {
        expect(seconds).toBeGreaterThanOrEqual(0);
        seen.push([name, failed]);
      });
      expect(existsSync(dir)).toBe(true);
      expect(handle.kind).toBe("pglite");
      await handle.ping();
      await sql`/* t.create */ create table kept (id int)`.execute(handle.db);
      await expect(sql`/* t.broken */ select * from missing_table`.execute(handle.db)).rejects.toThrow();
      expect(handle.poolStats()).toEqual({ total: 1, idle: 1, waiting: 0 });
      expect(handle.sessionLock("anything")).toBe(processLock);
      await handle.close();
      expect(seen).toEqual([
        ["ping", false],
        ["t.create", false],
        ["t.broken", true],
      ]);
      const again = await openDatabase(target, captureLog().log);
      expect((await sql<{ n: number }>`select count(*)::int as n from kept`.execute(again.db)).rows).toEqual([{ n: 0 }]);
      await again.close();
    } finally {
      rmSync(join(dir, "..", ".."), { recursive: true, force: true });
    }
  });

  it("delivers what is announced to its listeners, and stops on unlisten", async () => {
    // An empty data directory means in memory, as memory:// does.
    const handle = await openDatabase({ kind: "pglite", dataDir: "", seed: process.env.ANVIL_PGLITE_SEED }, captureLog().log);
    try {
      const heard: string[] = [];
      const stop = await handle.listen("anvil_test", (payload) => heard.push(payload));
      handle.announce([{ channel: "anvil_test", payload: "one" }]);
      expect(heard).toEqual(["one"]);
      await stop();
      handle.announce([{ channel: "anvil_test", payload: "two" }]);
      expect(heard).toEqual(["one"]);
    } finally {
      await handle.close();
    }
  });
});

describe("PostgreSQL connections (PostgreSQL only)", () => {
  let url: string;
  let admin: pg.Client;
  postgresWithAdmin((db) => ({ url, admin } = db));

  /** Ends (and waits for the end of) the backends of this database named `application`. */
  const terminate = (application: string) =>
    admin.query("select pg_terminate_backend(pid, 5000) from pg_stat_activity where datname = current_database() and application_name = $1", [application]);

  describe("FencedPgPool", () => {
    const pools: pg.Pool[] = [];
    const fenced = (config: pg.PoolConfig = {}) => {
      const pool = new pg.Pool({ connectionString: url, max: 2, ...config });
      pools.push(pool);
      return { pool, fenced: new FencedPgPool(pool) };
    };
    afterAll(() => Promise.all(pools.map((p) => p.end().catch(() => undefined))));
    const expectedName = (text: string) => `anvil_${createHash("sha1").update(text).digest("base64url").slice(0, 20)}`;
    const preparedOn = async (c: { query(text: string): Promise<pg.QueryResult> }) =>
      (await c.query("select name, statement from pg_prepared_statements order by statement")).rows as Array<{ name: string; statement: string }>;

    it("prepares a statement with parameters once per connection under a name from its text; none without parameters or past 4,000 characters", async () => {
      const c = await fenced().fenced.connect();
      try {
        const text = "select $1::int as n";
        expect((await c.query(text, [1])).rows).toEqual([{ n: 1 }]);
        expect((await c.query(text, [2])).rows).toEqual([{ n: 2 }]);
        await c.query("select 1 as plain");
        await c.query("select 2 as plain", []);
        const atLimit = `select $1::text as t /* ${"x".repeat(4_000 - "select $1::text as t /*  */".length)} */`;
        expect(atLimit.length).toBe(4_000);
        await c.query(atLimit, ["a"]);
        await c.query(`${atLimit} `, ["b"]);
        expect(await preparedOn(c)).toEqual([
          { name: expectedName(text), statement: text },
          { name: expectedName(atLimit), statement: atLimit },
        ]);
      } finally {
        c.release();
      }
    });

    it("prepares at most 200 statements per connection, running the rest unprepared", async () => {
      const c = await fenced().fenced.connect();
      try {
        for (let i = 0; i < 201; i++) expect((await c.query(`select $1::int + ${i} as n`, [1])).rows).toEqual([{ n: 1 + i }]);
        // The first ones stay prepared and in use.
        expect((await c.query("select $1::int + 0 as n", [5])).rows).toEqual([{ n: 5 }]);
        const prepared = await preparedOn(c);
        expect(prepared).toHaveLength(200);
        expect(prepared.map((p) => p.statement)).not.toContain("select $1::int + 200 as n");
      } finally {
        c.release();
      }
    });

    it("discards a connection whose query timed out client-side, sending nothing more on it", async () => {
      const { pool, fenced: f } = fenced({ query_timeout: 300 });
      const c = await f.connect();
      const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
      await expect(c.query("select pg_sleep(3)")).rejects.toThrow("Query read timeout");
      await expect(c.query("select 1")).rejects.toThrow("Query read timeout");
      c.release();
      expect(pool.totalCount).toBe(0);
      const next = await f.connect();
      expect((await next.query("select pg_backend_pid() as pid")).rows[0].pid).not.toBe(pid);
      next.release();
    });

    it("keeps a connection whose statement the server cancelled: a timeout with a SQLSTATE is the statement's, not the connection's", async () => {
      const { pool, fenced: f } = fenced({ statement_timeout: 100 });
      const c = await f.connect();
      const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
      await expect(c.query("select pg_sleep(3)")).rejects.toMatchObject({ code: "57014", message: "canceling statement due to statement timeout" });
      expect((await c.query("select pg_backend_pid() as pid")).rows[0].pid).toBe(pid);
      c.release();
      expect(pool.totalCount).toBe(1);
      const again = await f.connect();
      expect((await again.query("select pg_backend_pid() as pid")).rows[0].pid).toBe(pid);
      again.release();
    });

    it("retires a connection whose prepared statement a schema change made stale", async () => {
      const table = `stale_${randomUUID().replaceAll("-", "")}`;
      await admin.query(`create table ${table} (id int)`);
      const { pool, fenced: f } = fenced();
      const c = await f.connect();
      await c.query(`select * from ${table} where id = $1`, [1]);
      await admin.query(`alter table ${table} add column extra int`);
      await expect(c.query(`select * from ${table} where id = $1`, [1])).rejects.toThrow("cached plan must not change result type");
      await expect(c.query("select 1")).rejects.toThrow("cached plan must not change result type");
      c.release();
      expect(pool.totalCount).toBe(0);
    });

    it("reports an error that is neither a timeout nor a stale plan without retiring the connection", async () => {
      const { pool, fenced: f } = fenced();
      const c = await f.connect();
      await expect(c.query("select * from no_such_table_here")).rejects.toMatchObject({ code: "42P01" });
      expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
      c.release();
      expect(pool.totalCount).toBe(1);
    });

    it("turns a connection that cannot open into UNAVAILABLE, the driver's error kept as the cause", async () => {
      const missing = new URL(url);
      missing.pathname = `/anvil_missing_${randomUUID().slice(0, 8)}`;
      const err = await fenced({ connectionString: missing.toString() }).fenced.connect().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect(((err as UnavailableError).cause as { code?: string }).code).toBe("3D000");
    });

    it("reports its pool's open, idle and waiting connections", async () => {
      const { fenced: f } = fenced({ max: 1 });
      expect(f.stats()).toEqual({ total: 0, idle: 0, waiting: 0 });
      const c = await f.connect();
      const waiter = f.connect();
      expect(f.stats()).toEqual({ total: 1, idle: 0, waiting: 1 });
      c.release();
      const d = await waiter;
      d.release();
      expect(f.stats()).toEqual({ total: 1, idle: 1, waiting: 0 });
      await f.end();
      expect(f.stats()).toEqual({ total: 0, idle: 0, waiting: 0 });
    });
  });

  describe("PgSessionLock", () => {
    const { log, lines } = captureLog("warn");
    const locks: PgSessionLock[] = [];
    const lock = (name: string, timeoutMs?: number, at = url) => {
      const l = new PgSessionLock(at, name, log, timeoutMs);
      locks.push(l);
      return l;
    };
    afterAll(() => Promise.all(locks.map((l) => l.release())));
    /** PostgreSQL's view of the advisory lock `name` hashes to: who holds it. */
    const holders = async (name: string) => {
      const key = createHash("sha256").update(name).digest().readBigInt64BE(0);
      const unsigned = BigInt.asUintN(64, key);
      const { rows } = await admin.query(
        `select a.application_name from pg_locks l join pg_stat_activity a using (pid)
          where l.locktype = 'advisory' and l.granted and l.classid = $1::bigint::oid and l.objid = $2::bigint::oid and l.objsubid = 1`,
        [(unsigned >> 32n).toString(), (unsigned & 0xffffffffn).toString()],
      );
      return rows.map((r: { application_name: string }) => r.application_name);
    };

    it("is held by one instance at a time until it releases it; another name is another lock", async () => {
      const name = `lock-${randomUUID()}`;
      const [a, b] = [lock(name), lock(name)];
      expect(await a.acquire()).toBe(true);
      expect(await a.acquire()).toBe(true);
      expect(await b.acquire()).toBe(false);
      expect(await lock(`other-${randomUUID()}`).acquire()).toBe(true);
      expect(await holders(name)).toEqual(["anvil-session-lock"]);
      await a.release();
      expect(await holders(name)).toEqual([]);
      expect(await b.acquire()).toBe(true);
      expect(await a.acquire()).toBe(false);
      await b.release();
      expect(await a.acquire()).toBe(true);
    });

    it("is freed by the server when its holder's connection dies; the holder then no longer holds it", async () => {
      const name = `lock-${randomUUID()}`;
      const [a, b] = [lock(name), lock(name)];
      expect(await a.acquire()).toBe(true);
      await admin.query(
        `select pg_terminate_backend(l.pid, 5000) from pg_locks l
          where l.locktype = 'advisory' and l.granted and l.pid in (select pid from pg_stat_activity where application_name = 'anvil-session-lock')
            and l.objid = $1::bigint::oid`,
        [(BigInt.asUintN(64, createHash("sha256").update(name).digest().readBigInt64BE(0)) & 0xffffffffn).toString()],
      );
      expect(await b.acquire()).toBe(true);
      expect(await a.acquire()).toBe(false);
    });

    it("answers false, and says why, when the database cannot be reached", async () => {
      const unreachable = `postgres://postgres@127.0.0.1:${await closedPort()}/postgres`;
      const before = lines.length;
      expect(await lock("x", 1_000, unreachable).acquire()).toBe(false);
      expect(lines.slice(before).map((l) => JSON.parse(l) as { msg: string })).toEqual([
        expect.objectContaining({ level: 40, msg: "session lock: database unreachable; not holding the lock", err: expect.stringContaining("ECONNREFUSED") }),
      ]);
    });

    it("processLock, the embedded database's, is always this process's", async () => {
      expect(await processLock.acquire()).toBe(true);
      await processLock.release();
      expect(await processLock.acquire()).toBe(true);
    });
  });

  describe("PgNotificationListener", () => {
    /** Sends `payload` on `channel` from a connection of the test's own. */
    const notify = (channel: string, payload: string) => admin.query("select pg_notify($1, $2)", [channel, payload]);

    it("delivers a channel's notifications to each of its handlers, any channel name, until each unlistens", async () => {
      const listener = new PgNotificationListener(url, captureLog().log);
      try {
        const [a, b, odd]: [string[], string[], string[]] = [[], [], []];
        const stopA = await listener.listen("ch one", (p) => a.push(p));
        const stopB = await listener.listen("ch one", (p) => b.push(p));
        await listener.listen('we"ird', (p) => odd.push(p));
        await notify("ch one", "1");
        await notify('we"ird', "q1");
        await until(() => odd.length === 1, "heard the odd channel");
        expect({ a, b, odd }).toEqual({ a: ["1"], b: ["1"], odd: ["q1"] });
        await stopA();
        await notify("ch one", "2");
        await notify('we"ird', "q2");
        await until(() => odd.length === 2, "heard q2");
        expect({ a, b }).toEqual({ a: ["1"], b: ["1", "2"] });
        await stopB();
        await notify("ch one", "3");
        await notify('we"ird', "q3");
        // Notifications arrive in the order they were sent: once q3 is here, 3 would have been.
        await until(() => odd.length === 3, "heard q3");
        expect({ a, b }).toEqual({ a: ["1"], b: ["1", "2"] });
        // Listening again after the last handler left LISTENs again.
        const again: string[] = [];
        await listener.listen("ch one", (p) => again.push(p));
        await notify("ch one", "4");
        await until(() => again.length === 1, "heard 4 after listening again");
      } finally {
        await listener.close();
      }
    });

    it("listens anew after losing its connection, calling onGap when it lost it and again once it listens", async () => {
      const { log, lines } = captureLog("warn");
      const listener = new PgNotificationListener(url, log);
      try {
        const heard: string[] = [];
        let gaps = 0;
        const gapless: string[] = [];
        await listener.listen("anvil_gap", (p) => heard.push(p), () => gaps++);
        await listener.listen("anvil_gap", (p) => gapless.push(p));
        expect(gaps).toBe(0);
        await terminate("anvil-listener");
        await until(() => gaps === 2, "listened again");
        expect(lines.map((l) => JSON.parse(l) as { msg: string; retryMs: number })).toEqual([
          expect.objectContaining({ level: 40, msg: "notification listener lost its connection; reconnecting", retryMs: 100 }),
        ]);
        await notify("anvil_gap", "after");
        await until(() => heard.length === 1 && gapless.length === 1, "heard after reconnecting");
        expect(heard).toEqual(["after"]);
        // Lost again: the delay starts over from 100 ms, since the last connection succeeded.
        await terminate("anvil-listener");
        await until(() => gaps === 4, "listened again, twice");
        expect((JSON.parse(lines.at(-1)!) as { retryMs: number }).retryMs).toBe(100);
      } finally {
        await listener.close();
      }
    });

    it("stops calling a handler's onGap once it unlistens", async () => {
      const listener = new PgNotificationListener(url, captureLog().log);
      try {
        let leftGaps = 0;
        let stayingGaps = 0;
        const stop = await listener.listen("anvil_gap_left", () => undefined, () => leftGaps++);
        await listener.listen("anvil_gap_stays", () => undefined, () => stayingGaps++);
        await stop();
        await terminate("anvil-listener");
        await until(() => stayingGaps === 2, "listened again");
        expect(leftGaps).toBe(0);
      } finally {
        await listener.close();
      }
    });

    it("keeps listening for a new handler when an earlier handler's stop is called again", async () => {
      const listener = new PgNotificationListener(url, captureLog().log);
      try {
        const stale = await listener.listen("anvil_stale", () => undefined);
        await stale();
        const heard: string[] = [];
        await listener.listen("anvil_stale", (p) => heard.push(p));
        await stale();
        await notify("anvil_stale", "still");
        await until(() => heard.length === 1, "heard after the stale stop");
      } finally {
        await listener.close();
      }
    });

    it("closed while it connects, keeps no connection and retries nothing", async () => {
      const listeners = async () =>
        (await admin.query("select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'anvil-listener'")).rows[0].n as number;
      await until(async () => (await listeners()) === 0, "the earlier listeners left");
      const { log, lines } = captureLog("warn");
      const listener = new PgNotificationListener(url, log);
      const listening = listener.listen("anvil_closing", () => undefined);
      await listener.close();
      await listening;
      await until(async () => (await listeners()) === 0, "its connection ended");
      const refused = new PgNotificationListener(`postgres://postgres@127.0.0.1:${await closedPort()}/postgres`, log);
      const failing = refused.listen("anvil_closing", () => undefined);
      await refused.close();
      await failing;
      expect(lines).toEqual([]);
    });

    it("retries a database it cannot reach, doubling its delay, and stops on close", async () => {
      const { log, lines } = captureLog("warn");
      const listener = new PgNotificationListener(`postgres://postgres@127.0.0.1:${await closedPort()}/postgres`, log);
      const stop = await listener.listen("anvil_never", () => undefined);
      await until(() => lines.length >= 3, "retried twice");
      // Unlistening without a connection has nothing to tell the database.
      await stop();
      await listener.close();
      const retries = lines.map((l) => JSON.parse(l) as { msg: string; retryMs: number });
      expect(retries.slice(0, 3)).toEqual([
        expect.objectContaining({ msg: "notification listener cannot connect; retrying", retryMs: 100 }),
        expect.objectContaining({ msg: "notification listener cannot connect; retrying", retryMs: 200 }),
        expect.objectContaining({ msg: "notification listener cannot connect; retrying", retryMs: 400 }),
      ]);
    });
  });

  describe("AfterCommitAnnouncer", () => {
    /** An announcer over a real listening connection and a real client that sends its rounds, as openDatabase builds one. */
    async function announcerOverPostgres() {
      const listener = new PgNotificationListener(url, captureLog().log);
      const sender = { client: new pg.Client({ connectionString: url }) };
      await sender.client.connect();
      const listens: string[] = [];
      const errors: unknown[] = [];
      const announcer = new AfterCommitAnnouncer(
        {
          listen: (channel, onMessage, onGap) => {
            listens.push(channel);
            return listener.listen(channel, onMessage, onGap);
          },
          notifyAll: async (channels, payloads) => {
            await sender.client.query("select pg_notify(c, p) from unnest($1::text[], $2::text[]) as n (c, p)", [channels, payloads]);
          },
        },
        (err) => errors.push(err),
      );
      return {
        announcer,
        sender,
        listens,
        errors,
        close: async () => {
          await announcer.flushed();
          await listener.close();
          await sender.client.end().catch(() => undefined);
        },
      };
    }
    const notify = (channel: string, payload: string) => admin.query("select pg_notify($1, $2)", [channel, payload]);

    it("skips its own echo once, and still delivers another instance's same payload", async () => {
      const a = await announcerOverPostgres();
      try {
        const heard: string[] = [];
        await a.announcer.listen("anvil_echo", (p) => heard.push(p));
        a.announcer.announce([{ channel: "anvil_echo", payload: "same" }]);
        expect(heard).toEqual(["same"]);
        await a.announcer.flushed();
        await notify("anvil_echo", "same");
        await notify("anvil_echo", "end");
        await until(() => heard.includes("end"), "heard the end");
        expect(heard).toEqual(["same", "same", "end"]);
        expect(a.errors).toEqual([]);
      } finally {
        await a.close();
      }
    });

    it("skips as many echoes as rounds sent the payload, and takes one older than 10 s for another instance's", async () => {
      const a = await announcerOverPostgres();
      try {
        const heard: string[] = [];
        await a.announcer.listen("anvil_echoes", (p) => heard.push(p));
        // The second is announced while the first round is in flight: it goes in a round of its own.
        a.announcer.announce([{ channel: "anvil_echoes", payload: "twice" }]);
        a.announcer.announce([{ channel: "anvil_echoes", payload: "twice" }]);
        await a.announcer.flushed();
        await notify("anvil_echoes", "end");
        await until(() => heard.includes("end"), "heard the end");
        expect(heard).toEqual(["twice", "twice", "end"]);

        vi.useFakeTimers({ toFake: ["Date"] });
        const t = Date.now();
        vi.setSystemTime(t);
        a.announcer.announce([{ channel: "anvil_echoes", payload: "late" }]);
        // Its echo arrives 10 s after the round was sent (by this clock): no longer expected.
        vi.setSystemTime(t + 10_000);
        await a.announcer.flushed();
        await until(() => heard.filter((p) => p === "late").length === 2, "took the late echo for another instance's");
        vi.setSystemTime(t + 20_000);
        a.announcer.announce([{ channel: "anvil_echoes", payload: "in time" }]);
        vi.setSystemTime(t + 20_000 + 9_999);
        await a.announcer.flushed();
        await notify("anvil_echoes", "end 2");
        await until(() => heard.includes("end 2"), "heard the second end");
        expect(heard.slice(3)).toEqual(["late", "late", "in time", "end 2"]);
        // The late echo was forgotten when it came: announced again, its one echo is skipped, and another instance's is heard.
        vi.setSystemTime(t + 40_000);
        a.announcer.announce([{ channel: "anvil_echoes", payload: "late" }]);
        await a.announcer.flushed();
        await notify("anvil_echoes", "late");
        await until(() => heard.filter((p) => p === "late").length === 4, "heard the other instance's late");
        await notify("anvil_echoes", "end 3");
        await until(() => heard.includes("end 3"), "heard the third end");
        expect(heard.slice(7)).toEqual(["late", "late", "end 3"]);
      } finally {
        vi.useRealTimers();
        await a.close();
      }
    });

    it("reports a round that could not be sent, and expects no echo of it", async () => {
      const a = await announcerOverPostgres();
      try {
        const heard: string[] = [];
        await a.announcer.listen("anvil_failed", (p) => heard.push(p));
        await a.sender.client.end();
        a.announcer.announce([{ channel: "anvil_failed", payload: "lost" }]);
        expect(heard).toEqual(["lost"]);
        await a.announcer.flushed();
        expect(a.errors).toHaveLength(1);
        // Another instance's identical payload is not taken for the echo that never came.
        await notify("anvil_failed", "lost");
        await until(() => heard.length === 2, "heard the other instance's");
        // And the next round goes out again.
        a.sender.client = new pg.Client({ connectionString: url });
        await a.sender.client.connect();
        a.announcer.announce([{ channel: "anvil_failed", payload: "next" }]);
        await a.announcer.flushed();
        expect(a.errors).toHaveLength(1);
      } finally {
        await a.close();
      }
    });

    it("expects no echo on a channel it does not listen to, and listens anew after a failed LISTEN or a stale stop", async () => {
      const a = await announcerOverPostgres();
      try {
        // Nobody here listens: nothing is delivered, and no echo is expected.
        a.announcer.announce([{ channel: "anvil_later", payload: "p" }]);
        await a.announcer.flushed();
        const heard: string[] = [];
        const stale = await a.announcer.listen("anvil_later", (p) => heard.push(p));
        await notify("anvil_later", "p");
        await until(() => heard.length === 1, "heard another instance's p");
        await stale();
        const again: string[] = [];
        await a.announcer.listen("anvil_later", (p) => again.push(p));
        await stale();
        await notify("anvil_later", "q");
        await until(() => again.length === 1, "heard q after the stale stop");
        expect(heard).toEqual(["p"]);
      } finally {
        await a.close();
      }
    });

    it("lets the next listen on a channel try again after its LISTEN failed", async () => {
      const listener = new PgNotificationListener(url, captureLog().log);
      let failures = 1;
      const announcer = new AfterCommitAnnouncer(
        {
          // The first LISTEN fails, as one on a connection that drops would.
          listen: (channel, onMessage, onGap) => (failures-- > 0 ? Promise.reject(new Error("LISTEN failed")) : listener.listen(channel, onMessage, onGap)),
          notifyAll: async () => undefined,
        },
        () => undefined,
      );
      try {
        await expect(announcer.listen("anvil_retry", () => undefined)).rejects.toThrow("LISTEN failed");
        const heard: string[] = [];
        await announcer.listen("anvil_retry", (p) => heard.push(p));
        await notify("anvil_retry", "x");
        await until(() => heard.length === 1, "heard after listening again");
      } finally {
        await listener.close();
      }
    });

    it("listens once per channel however many handlers, until the last one leaves, and passes gaps on", async () => {
      const a = await announcerOverPostgres();
      try {
        const [one, two]: [string[], string[]] = [[], []];
        let gaps = 0;
        const stopOne = await a.announcer.listen("anvil_shared", (p) => one.push(p), () => gaps++);
        const stopTwo = await a.announcer.listen("anvil_shared", (p) => two.push(p));
        expect(a.listens).toEqual(["anvil_shared"]);
        await notify("anvil_shared", "1");
        await until(() => one.length === 1 && two.length === 1, "both heard 1");
        await stopOne();
        a.announcer.announce([{ channel: "anvil_shared", payload: "2" }]);
        expect({ one, two }).toEqual({ one: ["1"], two: ["1", "2"] });
        await terminate("anvil-listener");
        await until(async () => (await admin.query("select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'anvil-listener'")).rows[0].n === 1, "listening again");
        expect(gaps).toBe(0);
        await stopTwo();
        // Listening again after the last handler left asks the database anew.
        const three: string[] = [];
        await a.announcer.listen("anvil_shared", (p) => three.push(p), () => gaps++);
        expect(a.listens).toEqual(["anvil_shared", "anvil_shared"]);
        await notify("anvil_shared", "3");
        await until(() => three.length === 1, "heard 3");
        expect(two).toEqual(["1", "2"]);
        await terminate("anvil-listener");
        await until(() => gaps === 2, "told of the gap, and of listening again");
      } finally {
        await a.close();
      }
    });
  });

  describe("openDatabase", () => {
    it("opens a pool whose connections carry the configured timeouts, and tells the observer each statement", async () => {
      const seen: Array<[string, boolean]> = [];
      const seconds: number[] = [];
      const handle = await openDatabase({ kind: "postgres", url, poolSize: 3, statementTimeoutMs: 4_321 }, captureLog().log, (name, s, failed) => {
        seen.push([name, failed]);
        seconds.push(s);
      });
      try {
        expect(handle.kind).toBe("postgres");
        await handle.ping();
        const { rows } = await sql<Record<string, string>>`/* settings */ select current_setting('statement_timeout') as statement_timeout, current_setting('lock_timeout') as lock_timeout,
          current_setting('idle_in_transaction_session_timeout') as idle, current_setting('application_name') as app`.execute(handle.db);
        expect(rows).toEqual([{ statement_timeout: "4321ms", lock_timeout: "4321ms", idle: "30s", app: "anvil" }]);
        await expect(sql`/* broken */ select * from no_such_table_here`.execute(handle.db)).rejects.toThrow();
        await sql`/* sleeper */ select pg_sleep(0.05)`.execute(handle.db);
        expect(seen).toEqual([
          ["ping", false],
          ["settings", false],
          ["broken", true],
          ["sleeper", false],
        ]);
        // In seconds: the 50 ms sleep took at least 0.05 and far less than a second.
        expect(seconds.at(-1)).toBeGreaterThanOrEqual(0.05);
        expect(seconds.at(-1)).toBeLessThan(5);
        expect(handle.poolStats()).toEqual({ total: 1, idle: 1, waiting: 0 });
        expect(handle.sessionLock("x")).toBeInstanceOf(PgSessionLock);
      } finally {
        await handle.close();
      }
    });

    it("logs a pooled connection the server ended, and serves on with a new one", async () => {
      const { log, lines } = captureLog("warn");
      const handle = await openDatabase({ kind: "postgres", url, poolSize: 2, statementTimeoutMs: 10_000 }, log);
      try {
        await handle.ping();
        await terminate("anvil");
        const logged = () => lines.map((l) => JSON.parse(l) as { msg: string; err: string });
        await until(() => logged().some((l) => l.msg === "idle database connection failed"), "logged the lost connection");
        // Told by the pool and by the connection itself, each with the driver's reason.
        expect(logged().map((l) => l.msg).sort()).toEqual(["database connection failed", "idle database connection failed"]);
        for (const line of logged()) expect(line.err).toBe("terminating connection due to administrator command");
        await handle.ping();
      } finally {
        await handle.close();
      }
    });

    it("logs a round of announcements it could not send, and leaves no connection open once closed", async () => {
      const { log, lines } = captureLog("warn");
      const handle = await openDatabase({ kind: "postgres", url, poolSize: 2, statementTimeoutMs: 10_000 }, log);
      const heard: string[] = [];
      await handle.listen("anvil_too_long", (p) => heard.push(p));
      // PostgreSQL refuses a payload of 8000 bytes or more.
      handle.announce([{ channel: "anvil_too_long", payload: "x".repeat(9_000) }]);
      expect(heard).toHaveLength(1);
      await handle.close();
      expect(lines.map((l) => JSON.parse(l) as { msg: string; err: string })).toEqual([
        expect.objectContaining({ level: 40, msg: "cannot NOTIFY; other instances' waiters rely on polling", err: "payload string too long" }),
      ]);
      const open = async () =>
        (await admin.query("select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name in ('anvil', 'anvil-listener')")).rows[0].n as number;
      await until(async () => (await open()) === 0, "its connections ended");
    });

    it("delivers an announcement to this process at once and to another instance through the database", async () => {
      const target = { kind: "postgres", url, poolSize: 2, statementTimeoutMs: 10_000 } as const;
      const [one, two] = [await openDatabase(target, captureLog().log), await openDatabase(target, captureLog().log)];
      try {
        const [heardOne, heardTwo]: [string[], string[]] = [[], []];
        await one.listen("anvil_announce", (p) => heardOne.push(p));
        await two.listen("anvil_announce", (p) => heardTwo.push(p));
        one.announce([{ channel: "anvil_announce", payload: "hello" }]);
        expect(heardOne).toEqual(["hello"]);
        await until(() => heardTwo.length === 1, "the other instance heard it");
        expect(heardTwo).toEqual(["hello"]);
      } finally {
        await one.close();
        await two.close();
      }
    });
  });
});
