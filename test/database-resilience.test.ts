import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { sql } from "kysely";
import net from "node:net";
import pg from "pg";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { openDatabase } from "../src/db/database.js";
import { translateDatabaseError } from "../src/db/database-errors.js";
import { DeadlineExceededError, UnavailableError } from "../src/shared/errors.js";
import { clientFor, type Protocol } from "./support/clients.js";
import { type PrivatePostgres, privatePostgresAvailable, startPrivatePostgres } from "./support/private-postgres.js";
import { startServer, type TestServer } from "./support/server.js";

// These tests stop and restart a PostgreSQL server, so they need one of their
// own; they run wherever the PostgreSQL suite runs (TEST_DATABASE_URL is set).
const enabled = Boolean(process.env.TEST_DATABASE_URL) && privatePostgresAvailable;
if (!enabled) console.warn("database-resilience: skipped (needs TEST_DATABASE_URL and PostgreSQL 15 binaries)");

// What node-postgres and the server say about a lost connection; none of it may reach a client.
const driverText = /terminat|ECONN|refused|socket|connection|postgres|pg_|sql|timeout exceeded|client has|administrator|shutting|starting up/i;

type Users = Client<typeof UserService>;

/** The outcome of one RPC: its code ("OK" on success), message and timing. */
interface Outcome {
  readonly op: string;
  readonly start: number;
  readonly end: number;
  readonly code: string;
  readonly message: string;
}

async function attempt(op: string, call: () => Promise<unknown>): Promise<Outcome> {
  const start = Date.now();
  try {
    await call();
    return { op, start, end: Date.now(), code: "OK", message: "" };
  } catch (err) {
    const e = ConnectError.from(err);
    return { op, start, end: Date.now(), code: Code[e.code], message: e.rawMessage };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe.skipIf(!enabled)("Anvil on a PostgreSQL server that goes away", () => {
  let cluster: PrivatePostgres;
  let server: TestServer;
  let token: string;
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  const users = (protocol: Protocol = "connect-binary"): Users => clientFor(UserService, protocol, server.baseUrl, token);
  const readyz = async () => (await fetch(`${server.baseUrl}/readyz`)).status;
  let seq = 0;
  const email = () => `resilience-${process.pid}-${++seq}@example.com`;

  beforeAll(async () => {
    process.on("uncaughtException", onUncaught);
    process.on("unhandledRejection", onUncaught);
    cluster = await startPrivatePostgres();
    server = await startServer("postgres", { database: { kind: "postgres", url: cluster.url, drop: async () => {} } });
    token = await server.token();
  });

  afterAll(async () => {
    await server?.close();
    await cluster?.destroy();
    process.off("uncaughtException", onUncaught);
    process.off("unhandledRejection", onUncaught);
  });

  it("sets the pool's statement, lock and idle-in-transaction timeouts on every connection", async () => {
    const settings = await poolSettings(server);
    expect(settings).toEqual({
      statement_timeout: "15s",
      lock_timeout: "15s",
      idle_in_transaction_session_timeout: "30s",
      application_name: "anvil",
    });
  });

  it("bounds a request's queries by its deadline: a blocked update is cancelled and writes nothing", async () => {
    const user = (await users().createUser({ user: { email: email(), displayName: "before" } })).user!;
    const locker = new pg.Client({ connectionString: cluster.url });
    await locker.connect();
    try {
      await locker.query("begin");
      await locker.query("select 1 from users where id = $1 for update", [user.id]);
      const update = (displayName: string, etag: string) => ({
        user: { id: user.id, displayName, etag },
        updateMask: create(FieldMaskSchema, { paths: ["display_name"] }),
      });

      // The typed client, with a 500 ms deadline (sent as a timeout header).
      const started = Date.now();
      const outcome = await attempt("update", () => users().updateUser(update("blocked", user.etag), { timeoutMs: 500 }));
      expect(outcome.code).toBe("DeadlineExceeded");
      expect(Date.now() - started).toBeLessThan(1_500);

      // A plain POST that never gives up itself: the server's own answer is DEADLINE_EXCEEDED.
      const rawStarted = Date.now();
      const raw = await fetch(`${server.baseUrl}/anvil.users.v1.UserService/UpdateUser`, {
        method: "POST",
        headers: { "content-type": "application/json", "connect-timeout-ms": "500", authorization: `Bearer ${token}` },
        body: JSON.stringify({ user: { id: user.id, displayName: "blocked-raw", etag: user.etag }, updateMask: "displayName" }),
      });
      expect(raw.status).toBe(504);
      expect((await raw.json()).code).toBe("deadline_exceeded");
      expect(Date.now() - rawStarted).toBeLessThan(1_500);

      // The statements themselves were cancelled, not left waiting for the lock.
      await waitFor(
        "Anvil's blocked statements to be cancelled",
        async () =>
          (
            await locker.query(
              "select count(*)::int as n from pg_stat_activity where application_name = 'anvil' and wait_event_type = 'Lock'",
            )
          ).rows[0].n === 0,
        1_000,
      );
      await locker.query("rollback");
    } finally {
      await locker.end();
    }
    // Had either update only been abandoned by the client, it would have gone through now.
    await sleep(200);
    const after = (await users().getUser({ id: user.id })).user!;
    expect(after.displayName).toBe("before");
    expect(after.etag).toBe(user.etag);
    const next = (
      await users().updateUser({
        user: { id: user.id, displayName: "after", etag: user.etag },
        updateMask: create(FieldMaskSchema, { paths: ["display_name"] }),
      })
    ).user!;
    expect(next.displayName).toBe("after");
    expect(next.etag).not.toBe(user.etag);
  });

  it("survives a restart of the server under load: in-flight calls are UNAVAILABLE, later ones succeed", async () => {
    const outcomes: Outcome[] = [];
    let running = true;
    const worker = async (protocol: Protocol) => {
      const client = users(protocol);
      while (running) {
        let id: string | undefined;
        const created = await attempt("create", async () => {
          id = (await client.createUser({ user: { email: email(), displayName: "load" } })).user!.id;
        });
        outcomes.push(created);
        if (id !== undefined) outcomes.push(await attempt("get", () => client.getUser({ id: id! })));
        // Fail fast, but do not spin while the database is down.
        if (created.code !== "OK") await sleep(10);
      }
    };
    const protocols: Protocol[] = ["connect-binary", "connect-json", "grpc", "grpc-web", "connect-binary", "grpc"];
    const workers = protocols.map(worker);
    const okSince = (t: number) => outcomes.filter((o) => o.code === "OK" && o.start >= t).length;

    await waitFor("load before the restart", () => okSince(0) >= 30, 10_000);
    const restartAt = Date.now();
    await cluster.restart();
    const backAt = Date.now();
    await waitFor("successes after the restart", () => okSince(backAt) >= 60, 20_000);
    running = false;
    await Promise.all(workers);

    const codes = new Set(outcomes.map((o) => o.code));
    const failures = outcomes.filter((o) => o.code !== "OK");
    // Only success or UNAVAILABLE — never INTERNAL, never a driver message.
    expect([...codes].filter((c) => c !== "OK" && c !== "Unavailable")).toEqual([]);
    expect(failures.length, "the restart should have failed some calls").toBeGreaterThan(0);
    for (const f of failures) expect(f.message).not.toMatch(driverText);
    // Every failure overlapped the restart; every call started once the server was back succeeded.
    for (const f of failures) expect(f.end).toBeGreaterThanOrEqual(restartAt);
    expect(outcomes.filter((o) => o.start >= backAt && o.code !== "OK")).toEqual([]);
    expect(uncaught.map(String)).toEqual([]);
  });

  it("answers UNAVAILABLE promptly while the server is stopped, and /readyz 503; recovers when it starts", async () => {
    // Leave idle pooled connections behind: the stop must not crash the process through them.
    await Promise.all(Array.from({ length: 5 }, () => users().listUsers({ pageSize: 1 })));
    expect(await readyz()).toBe(200);
    await cluster.stop();
    try {
      for (const protocol of ["connect-json", "grpc"] as const) {
        const client = users(protocol);
        const create = await attempt("create", () => client.createUser({ user: { email: email() } }));
        const list = await attempt("list", () => client.listUsers({}));
        for (const o of [create, list]) {
          expect(o.code).toBe("Unavailable");
          expect(o.message).not.toMatch(driverText);
          // Refused connections fail at once, well within the pool's 5 s connect timeout.
          expect(o.end - o.start).toBeLessThan(5_000);
        }
      }
      expect(await readyz()).toBe(503);
      expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
    } finally {
      await cluster.start();
    }
    const created = (await users().createUser({ user: { email: email() } })).user!;
    expect((await users("grpc").getUser({ id: created.id })).user!.id).toBe(created.id);
    expect(await readyz()).toBe(200);
    expect(uncaught.map(String)).toEqual([]);
  });

  it("bounds statements by the configured statement timeout", async () => {
    const handle = await openDatabase(
      { kind: "postgres", url: cluster.url, poolSize: 2, statementTimeoutMs: 300 },
      pino({ level: "silent" }),
    );
    try {
      const started = Date.now();
      const err = await sql`select pg_sleep(3)`.execute(handle.db).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(translateDatabaseError(err)).toBeInstanceOf(DeadlineExceededError);
    } finally {
      await handle.close();
    }
  });
});

describe.skipIf(!enabled)("the pool's connect timeout", () => {
  it("gives up on a server that accepts but never answers, as UNAVAILABLE", async () => {
    // A socket that accepts connections and then says nothing, like a hung server.
    const silent = net.createServer(() => {});
    const sockets = new Set<net.Socket>();
    silent.on("connection", (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as net.AddressInfo).port;
    const handle = await openDatabase(
      { kind: "postgres", url: `postgres://postgres@127.0.0.1:${port}/postgres`, poolSize: 1, statementTimeoutMs: 1_000 },
      pino({ level: "silent" }),
    );
    try {
      const started = Date.now();
      const err = await handle.ping().then(
        () => undefined,
        (e: unknown) => e,
      );
      const elapsed = Date.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(4_500);
      expect(elapsed).toBeLessThan(8_000);
      expect(translateDatabaseError(err)).toBeInstanceOf(UnavailableError);
    } finally {
      await handle.close();
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});

async function poolSettings(server: TestServer): Promise<Record<string, string>> {
  const names = ["statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "application_name"];
  const out: Record<string, string> = {};
  for (const name of names) {
    const result = await sql<{ setting: string }>`select current_setting(${name}) as setting`.execute(server.app.database.db);
    out[name] = result.rows[0]!.setting;
  }
  return out;
}
