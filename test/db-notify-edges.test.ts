// Edges of src/db's notifications that the db group's run left
// (mutation/incremental/db.json): the echo bookkeeping of the after-commit
// announcer (two echoes of one payload in flight at once, the sweep of old
// echoes at 256, an echo forgotten after a gap), the listening connection's
// UNLISTEN once the last handler leaves and its TCP keepalive, the embedded
// database's LISTEN through its one connection, its NOTIFY, its seed and
// its close, and the statement kind PGlitePool reads. A file of its own:
// `npm run mutate` retests every mutant a changed test file killed.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { sql } from "kysely";
import pg from "pg";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AfterCommitAnnouncer } from "../src/db/after-commit-announcer.js";
import { type DatabaseHandle, openDatabase } from "../src/db/database.js";
import { PgNotificationListener } from "../src/db/pg-notification-listener.js";
import { createTestDatabase, databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";
import { postgresWithAdmin } from "./support/suite-postgres.js";

const silent = pino({ level: "silent" });

/** Resolves once `check` holds, polling every 10 ms; fails after 5 s (what it waits for takes milliseconds). */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (const started = performance.now(); !(await check()); ) {
    if (performance.now() - started > 5_000) throw new Error(`never ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.each(databaseKinds)("notifications through openDatabase on %s", (kind) => {
  const database = migratedDatabase(kind);
  /** NOTIFYs as another instance would: a statement of its own, through the database. */
  const notify = (handle: DatabaseHandle, channel: string, payload: string) => sql`/* test.notify */ select pg_notify(${channel}, ${payload})`.execute(handle.db);

  it("delivers a NOTIFY through the database to its listener, once, after the channel was left and listened to again", async () => {
    const { handle } = database;
    const channel = `anvil_relisten_${randomUUID().slice(0, 8)}`;
    const first: string[] = [];
    const stop = await handle.listen(channel, (p) => first.push(p));
    await notify(handle, channel, "one");
    await until(() => first.length === 1, "heard one");
    await stop();
    const heard: string[] = [];
    const again = await handle.listen(channel, (p) => heard.push(p));
    try {
      await notify(handle, channel, "two");
      await notify(handle, channel, "end");
      await until(() => heard.includes("end"), "heard the end");
      // The first LISTEN ended with its stop: one delivery per notification, not one per LISTEN ever made.
      expect({ first, heard }).toEqual({ first: ["one"], heard: ["two", "end"] });
    } finally {
      await again();
    }
  });

  it("sends what it announces to the database: the echo is skipped, another instance's same payload is heard", async () => {
    const { handle } = database;
    const channel = `anvil_sent_${randomUUID().slice(0, 8)}`;
    const heard: string[] = [];
    const stop = await handle.listen(channel, (p) => heard.push(p));
    try {
      handle.announce([{ channel, payload: "p" }]);
      await until(() => heard.length === 1, "heard p at once");
      // Another instance's p: had this one's round not reached the database, this would be taken for its echo.
      await notify(handle, channel, "p");
      await notify(handle, channel, "end");
      await until(() => heard.includes("end"), "heard the end");
      expect(heard).toEqual(["p", "p", "end"]);
    } finally {
      await stop();
    }
  });

  it("reads a parenthesized query as a query: no affected rows, though its first word is WITH", async () => {
    const result = await sql<{ x: number }>`(with a as (select 1 as x) select x from a)`.execute(database.db);
    expect(result.rows).toEqual([{ x: 1 }]);
    expect(result.numAffectedRows).toBeUndefined();
  });

  it("reads the statement after a line comment ended by a carriage return, as PostgreSQL does: its affected rows", async () => {
    const result = await sql`${sql.raw("-- a note\rupdate users set display_name = display_name where false")}`.execute(database.db);
    expect(result.numAffectedRows).toBe(0n);
  });

  it("refuses statements once closed", async () => {
    const created = await createTestDatabase(kind);
    try {
      const handle = await openDatabase(
        created.url ? { kind: "postgres", url: created.url, poolSize: 2, statementTimeoutMs: 10_000 } : { kind: "pglite", dataDir: "memory://", seed: process.env.ANVIL_PGLITE_SEED },
        silent,
      );
      await handle.ping();
      await handle.close();
      await expect(handle.ping()).rejects.toThrow();
    } finally {
      await created.drop();
    }
  });
});

describe("the embedded database opened in memory", () => {
  const dir = mkdtempSync(join(tmpdir(), "anvil-notify-edges-"));
  const seed = join(dir, "marked.tar");
  beforeAll(async () => {
    // A seed whose cluster has a table in it: a database opened from it has the table.
    const marked = await PGlite.create();
    try {
      await marked.exec("create table seed_marker (x int)");
      writeFileSync(seed, Buffer.from(await (await marked.dumpDataDir("none")).arrayBuffer()));
    } finally {
      await marked.close();
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("starts a memory:// database with a name from its seed, its one connection free", async () => {
    const handle = await openDatabase({ kind: "pglite", dataDir: `memory://anvil-${randomUUID().slice(0, 8)}`, seed }, silent);
    try {
      expect(handle.poolStats()).toEqual({ total: 1, idle: 1, waiting: 0 });
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_tables where tablename = 'seed_marker'`.execute(handle.db);
      expect(rows).toEqual([{ n: 1 }]);
    } finally {
      await handle.close();
    }
  });
});

describe("notification edges (PostgreSQL only)", () => {
  const kind = databaseKinds.includes("postgres") ? "postgres" : "pglite";
  let url: string;
  let admin: pg.Client;
  postgresWithAdmin((db) => ({ url, admin } = db), kind === "postgres");

  const notify = (channel: string, payload: string) => admin.query("select pg_notify($1, $2)", [channel, payload]);
  /** The last statement the listening connection of this database ran. */
  const listenerLastQuery = async () =>
    (await admin.query("select query from pg_stat_activity where datname = current_database() and application_name = 'anvil-listener'")).rows.map((r: { query: string }) => r.query);

  /**
   * An announcer over a real listening connection whose rounds are sent as
   * `send` says: each on a client of its own, in a transaction left open for
   * the test to commit or roll back (`held`), or at once.
   */
  async function announcerOverPostgres() {
    const listener = new PgNotificationListener(url, silent);
    const held: pg.Client[] = [];
    const errors: unknown[] = [];
    const state = { hold: false, gate: Promise.resolve() };
    const announcer = new AfterCommitAnnouncer(
      {
        listen: (channel, onMessage, onGap) => listener.listen(channel, onMessage, onGap),
        notifyAll: async (channels, payloads) => {
          await state.gate;
          const client = new pg.Client({ connectionString: url });
          await client.connect();
          try {
            if (state.hold) await client.query("begin");
            await client.query("select pg_notify(c, p) from unnest($1::text[], $2::text[]) as n (c, p)", [channels, payloads]);
          } finally {
            if (state.hold) held.push(client);
            else await client.end();
          }
        },
      },
      (err) => errors.push(err),
    );
    return {
      announcer,
      state,
      errors,
      /** Ends the held rounds' transactions, oldest first: commit sends their notifications, rollback drops them. */
      end: async (how: "commit" | "rollback") => {
        for (const client of held.splice(0)) {
          await client.query(how);
          await client.end();
        }
      },
      close: async () => {
        // A failed round is its test's failure: the listener still closes.
        await announcer.flushed().catch(() => undefined);
        for (const client of held.splice(0)) await client.end().catch(() => undefined);
        await listener.close();
      },
    };
  }

  it.runIf(kind === "postgres")("skips both echoes of a payload sent by two rounds before either echo came back (PostgreSQL only)", async () => {
    const a = await announcerOverPostgres();
    try {
      const heard: string[] = [];
      await a.announcer.listen("anvil_two_in_flight", (p) => heard.push(p));
      a.state.hold = true;
      a.announcer.announce([{ channel: "anvil_two_in_flight", payload: "twice" }]);
      await a.announcer.flushed();
      a.announcer.announce([{ channel: "anvil_two_in_flight", payload: "twice" }]);
      await a.announcer.flushed();
      // Both rounds' echoes arrive now, after both were expected.
      await a.end("commit");
      await notify("anvil_two_in_flight", "end");
      await until(() => heard.includes("end"), "heard the end");
      expect(heard).toEqual(["twice", "twice", "end"]);
    } finally {
      await a.close();
    }
  });

  it.runIf(kind === "postgres")("sweeps the echoes past their window once 256 are expected: one sent again is expected once (PostgreSQL only)", async () => {
    const a = await announcerOverPostgres();
    try {
      const heard: string[] = [];
      await a.announcer.listen("anvil_sweep", (p) => heard.push(p));
      vi.useFakeTimers({ toFake: ["Date"] });
      const t = Date.now();
      vi.setSystemTime(t);
      // 256 echoes expected that never come (their round rolls back, as if lost).
      a.state.hold = true;
      a.announcer.announce(Array.from({ length: 256 }, (_, i) => ({ channel: "anvil_sweep", payload: `p${i}` })));
      await a.announcer.flushed();
      await a.end("rollback");
      a.state.hold = false;
      // Past their window, p0 is sent again: the sweep forgets the old p0, so its one echo is skipped and no more.
      vi.setSystemTime(t + 10_000);
      a.announcer.announce([{ channel: "anvil_sweep", payload: "p0" }]);
      await a.announcer.flushed();
      await notify("anvil_sweep", "p0");
      await notify("anvil_sweep", "end");
      await until(() => heard.includes("end"), "heard the end");
      expect(heard.slice(256)).toEqual(["p0", "p0", "end"]);
    } finally {
      vi.useRealTimers();
      await a.close();
    }
  });

  it.runIf(kind === "postgres")("no longer counts an echo that never came once its window passed: another instance's same payload is heard (PostgreSQL only)", async () => {
    const a = await announcerOverPostgres();
    try {
      const heard: string[] = [];
      await a.announcer.listen("anvil_stale", (p) => heard.push(p));
      vi.useFakeTimers({ toFake: ["Date"] });
      const t = Date.now();
      vi.setSystemTime(t);
      // An echo expected that never comes (its round rolls back, as if lost), fewer than the sweep's 256.
      a.state.hold = true;
      a.announcer.announce([{ channel: "anvil_stale", payload: "p0" }]);
      await a.announcer.flushed();
      await a.end("rollback");
      a.state.hold = false;
      // Past its window p0 is sent again: one echo is expected, not two.
      vi.setSystemTime(t + 10_000);
      a.announcer.announce([{ channel: "anvil_stale", payload: "p0" }]);
      await a.announcer.flushed();
      await notify("anvil_stale", "p0");
      await notify("anvil_stale", "end");
      await until(() => heard.includes("end"), "heard the end");
      // Each announce is delivered here at once; its echo is skipped; the other instance's p0 is heard.
      expect(heard).toEqual(["p0", "p0", "p0", "end"]);
    } finally {
      vi.useRealTimers();
      await a.close();
    }
  });

  it.runIf(kind === "postgres")("reports a round that failed after a gap forgot its echo (PostgreSQL only)", async () => {
    const a = await announcerOverPostgres();
    try {
      let gaps = 0;
      await a.announcer.listen("anvil_gap_fail", () => undefined, () => gaps++);
      let open!: () => void;
      a.state.gate = new Promise((resolve) => (open = resolve));
      // PostgreSQL refuses a payload of 8000 bytes or more: the round fails, once the gate opens.
      a.announcer.announce([{ channel: "anvil_gap_fail", payload: "x".repeat(9_000) }]);
      await admin.query("select pg_terminate_backend(pid, 5000) from pg_stat_activity where datname = current_database() and application_name = 'anvil-listener'");
      await until(() => gaps >= 1, "told of the gap");
      open();
      await a.announcer.flushed();
      expect(a.errors.map((e) => (e as Error).message)).toEqual(["payload string too long"]);
    } finally {
      await a.close();
    }
  });

  it.runIf(kind === "postgres")("UNLISTENs a channel once its last handler leaves, not before (PostgreSQL only)", async () => {
    const listener = new PgNotificationListener(url, silent);
    try {
      const stopOne = await listener.listen("anvil_leaving", () => undefined);
      const stopTwo = await listener.listen("anvil_leaving", () => undefined);
      await stopOne();
      expect(await listenerLastQuery()).toEqual(['LISTEN "anvil_leaving"']);
      await stopTwo();
      expect(await listenerLastQuery()).toEqual(['UNLISTEN "anvil_leaving"']);
      // A stale stop, once another handler listens again, UNLISTENs nothing.
      const heard: string[] = [];
      await listener.listen("anvil_leaving", (p) => heard.push(p));
      await stopTwo();
      expect(await listenerLastQuery()).toEqual(['LISTEN "anvil_leaving"']);
      await notify("anvil_leaving", "still");
      await until(() => heard.length === 1, "heard after the stale stop");
    } finally {
      await listener.close();
    }
  });

  it.runIf(kind === "postgres")("keeps the listening connection and the pool's alive with TCP keepalive (PostgreSQL only)", async () => {
    const keepAlive = vi.spyOn(net.Socket.prototype, "setKeepAlive");
    const listener = new PgNotificationListener(url, silent);
    let handle: DatabaseHandle | undefined;
    try {
      await listener.listen("anvil_keepalive", () => undefined);
      expect(keepAlive.mock.calls.map((call) => call[0])).toContain(true);
      keepAlive.mockClear();
      handle = await openDatabase({ kind: "postgres", url, poolSize: 1, statementTimeoutMs: 10_000 }, silent);
      await handle.ping();
      expect(keepAlive.mock.calls.map((call) => call[0])).toContain(true);
    } finally {
      keepAlive.mockRestore();
      await handle?.close();
      await listener.close();
    }
  });
});
