// The gateway's SIGTERM drain, against a real gateway process: readiness
// flips while calls are still served, then keep-alive HTTP/1.1 clients,
// HTTP/2 clients, streams and waiting claims are wound down without one call
// cut half-way, and the process exits 0 within its bounds.
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { clientFor } from "./support/clients.js";
import { createTestDatabase, databaseKinds, type DatabaseKind, type TestDatabase } from "./support/databases.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gateway-process.js";
import { claim, operationClients, runWorkflow, until, watchWith, type Watch } from "./support/operations.js";
import type { TestServer } from "./support/server.js";

const drainDelayMs = 3_000;
const shutdownTimeoutMs = 20_000;

/** One call of a traffic loop, as its client saw it. */
interface Outcome {
  readonly email: string;
  readonly ok: boolean;
  /** The error when it failed: a connection error code, or a Connect code name. */
  readonly error?: string;
  readonly connectionClose?: boolean;
  /** When the client had its answer. */
  readonly at: number;
}

describe.each(databaseKinds)("SIGTERM drain on %s", (kind) => {
  let database: TestDatabase;
  let dataDir: string;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    database = await createTestDatabase(kind);
    // The embedded database lives in the child: on disk, so the test can read what it committed after it exits.
    dataDir = mkdtempSync(join(tmpdir(), "anvil-drain-"));
    gateway = await startGatewayProcess(kind, {
      database,
      env: {
        ANVIL_DRAIN_DELAY: `${drainDelayMs}ms`,
        ANVIL_SHUTDOWN_TIMEOUT: `${shutdownTimeoutMs}ms`,
        ANVIL_OPERATIONS_POLL_MS: "5000",
        ...(kind === "pglite" && { ANVIL_DATA_DIR: join(dataDir, "data") }),
      },
    });
  }, 120_000);
  afterAll(async () => {
    await gateway?.close();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("flips readiness first, then finishes every call in flight, ends streams UNAVAILABLE, answers waiting claims, and exits 0", async () => {
    const admin = await gateway.token("acme-admin");
    const asServer = gateway as unknown as TestServer;
    const ops = await operationClients(asServer, "connect-json");
    const opsH2 = await operationClients(asServer, "grpc");
    const operation = await runWorkflow(ops, [{ name: "only", kind: "drain-watched" }]);

    // Streams over HTTP/1.1 (Connect) and HTTP/2 (gRPC), and waiting claims on both.
    const watches: Watch[] = [watchWith(ops.operations, operation.id), watchWith(opsH2.operations, operation.id)];
    await until(() => watches.every((w) => w.messages.length >= 1), 15_000, "the watches to start");
    const claims = [ops, opsH2].map((c) => {
      const started = Date.now();
      return claim(c, "drain-worker", { kinds: ["nothing-comes"], waitMs: 30_000 }).then(
        (task) => ({ task, error: undefined as unknown, ms: Date.now() - started, at: Date.now() }),
        (error: unknown) => ({ task: undefined, error, ms: Date.now() - started, at: Date.now() }),
      );
    });

    // Keep-alive HTTP/1.1 and HTTP/2 clients calling back to back until they are refused.
    const outcomes: Outcome[] = [];
    let stopLoops = false;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const h1Loops = Array.from({ length: 4 }, (_, i) =>
      (async () => {
        for (let n = 0; !stopLoops; n++) {
          const email = `h1-${i}-${n}@drain.example`;
          const outcome = await createUserHttp1(gateway.port, admin, email, agent);
          outcomes.push(outcome);
          if (!outcome.ok) return;
        }
      })(),
    );
    const users = createClient(UserService, createGrpcTransport({ baseUrl: gateway.baseUrl, interceptors: [bearer(admin)] }));
    const h2Loops = Array.from({ length: 4 }, (_, i) =>
      (async () => {
        for (let n = 0; !stopLoops; n++) {
          const email = `h2-${i}-${n}@drain.example`;
          try {
            await users.createUser({ user: { email, displayName: "drain" } });
            outcomes.push({ email, ok: true, at: Date.now() });
          } catch (err) {
            const e = ConnectError.from(err);
            // RST_STREAM REFUSED_STREAM: "closed prior to any processing" (RFC 9113 §8.7), safe to retry;
            // connect-node reports it as INTERNAL where gRPC's spec says UNAVAILABLE.
            const refused = /REFUSED_STREAM/.test(e.rawMessage);
            outcomes.push({ email, ok: false, error: refused ? "REFUSED_STREAM" : Code[e.code], at: Date.now() });
            return;
          }
        }
      })(),
    );
    await until(() => outcomes.filter((o) => o.ok).length >= 20, 30_000, "traffic to flow");

    // Two calls in flight across the whole drain: their bodies arrive only once the port is closed.
    const slowH1 = startTrickledHttp1(gateway.port, admin, "slow-h1@drain.example");
    const slowH2 = startTrickledHttp2(gateway.port, admin, "slow-h2@drain.example");
    await Promise.all([slowH1.started, slowH2.started]);

    const signalled = Date.now();
    gateway.kill("SIGTERM");

    // The drain delay: NOT_SERVING at once, while calls are still served.
    await until(async () => (await fetch(`${gateway.baseUrl}/readyz`)).status === 503, drainDelayMs, "/readyz to turn 503");
    const unreadyAt = Date.now();
    const health = createClient(Health, createGrpcTransport({ baseUrl: gateway.baseUrl }));
    expect(HealthCheckResponse_ServingStatus[(await health.check({ service: "" })).status]).toBe("NOT_SERVING");
    await expect(clientFor(UserService, "connect-json", gateway.baseUrl, admin).listUsers({ pageSize: 1 })).resolves.toBeDefined();
    expect(watches.every((w) => w.messages.length >= 1)).toBe(true);

    // Then the port closes, not before the delay is over.
    await until(async () => !(await accepts(gateway.port)), drainDelayMs + 10_000, "the port to close");
    const closedAt = Date.now();
    expect(closedAt - signalled).toBeGreaterThanOrEqual(drainDelayMs - 100);
    expect(outcomes.filter((o) => o.ok && o.at > unreadyAt && o.at < closedAt).length).toBeGreaterThan(0);

    // The HTTP/2 session got GOAWAY; both slow calls now send the rest of their bodies and complete.
    await until(() => slowH2.goAway(), 5_000, "GOAWAY on the HTTP/2 session");
    const [h1, h2] = await Promise.all([slowH1.finish(), slowH2.finish()]);
    expect(h1).toMatchObject({ status: 200, connection: "close" });
    expect(h2).toMatchObject({ status: 200 });
    expect(JSON.parse(h1.body).user.email).toBe("slow-h1@drain.example");
    expect(JSON.parse(h2.body).user.email).toBe("slow-h2@drain.example");

    // Streams ended UNAVAILABLE once the delay was over; waiting claims returned at once, empty.
    for (const w of watches) {
      const err = await w.done;
      expect(err).toBeInstanceOf(ConnectError);
      expect(Code[(err as ConnectError).code]).toBe("Unavailable");
      expect(w.messages.some((m) => m.item.case === "event" && m.item.value.payload.case === "completion")).toBe(false);
    }
    for (const c of await Promise.all(claims)) {
      expect(c.error).toBeUndefined();
      expect(c.task).toBeUndefined();
      expect(c.at - signalled).toBeGreaterThanOrEqual(drainDelayMs - 100);
      expect(c.ms).toBeLessThan(drainDelayMs + 25_000);
      expect(c.at - closedAt).toBeLessThan(5_000);
    }

    const exit = await gateway.exited;
    const tookMs = Date.now() - signalled;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(tookMs).toBeLessThan(drainDelayMs + shutdownTimeoutMs);
    stopLoops = true;
    await Promise.all([...h1Loops, ...h2Loops]);
    agent.destroy();

    // No call cut half-way: each one either completed (and its user exists) or
    // was refused before the gateway read it (a connection error or
    // UNAVAILABLE, and no user).
    const stored = new Set(await storedEmails(kind, database, join(dataDir, "data")));
    const failed = outcomes.filter((o) => !o.ok);
    expect(failed.length).toBeGreaterThan(0);
    for (const o of failed) {
      expect(["ECONNREFUSED", "ECONNRESET", "EPIPE", "REFUSED_STREAM", "Unavailable"]).toContain(o.error);
      expect(stored.has(o.email), `${o.email} failed (${o.error}) but was stored: cut half-way`).toBe(false);
    }
    for (const o of outcomes.filter((o) => o.ok)) expect(stored.has(o.email), `${o.email} succeeded but is missing`).toBe(true);
    expect(stored.has("slow-h1@drain.example") && stored.has("slow-h2@drain.example")).toBe(true);
    // Keep-alive connections were closed by the gateway, not cut: those in use at the stop answered `Connection: close`.
    expect(outcomes.some((o) => o.ok && o.connectionClose)).toBe(true);
  }, 120_000);
});

describe.each(databaseKinds)("a second SIGTERM on %s", (kind) => {
  let gateway: GatewayProcess;
  beforeAll(async () => {
    gateway = await startGatewayProcess(kind, { env: { ANVIL_DRAIN_DELAY: "60s", ANVIL_SHUTDOWN_TIMEOUT: "60s" } });
  }, 120_000);
  afterAll(() => gateway?.close());

  it("exits at once, without waiting for the drain delay", async () => {
    gateway.kill("SIGTERM");
    await until(async () => (await fetch(`${gateway.baseUrl}/readyz`)).status === 503, 10_000, "the drain to start");
    const second = Date.now();
    gateway.kill("SIGTERM");
    const exit = await gateway.exited;
    expect(Date.now() - second).toBeLessThan(3_000);
    expect(exit.code).toBe(1);
  }, 60_000);
});

function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** CreateUser over Connect JSON on a keep-alive HTTP/1.1 connection of `agent`. */
function createUserHttp1(port: number, token: string, email: string, agent: http.Agent): Promise<Outcome> {
  const body = JSON.stringify({ user: { email, displayName: "drain" } });
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        agent,
        method: "POST",
        path: "/anvil.users.v1.UserService/CreateUser",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err: NodeJS.ErrnoException) => resolve({ email, ok: false, error: err.code ?? err.message, at: Date.now() }));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          const ok = res.statusCode === 200 && (JSON.parse(text) as { user?: { email?: string } }).user?.email === email;
          resolve({ email, ok, error: ok ? undefined : `HTTP ${res.statusCode} ${text}`, connectionClose: res.headers.connection === "close", at: Date.now() });
        });
      },
    );
    req.on("error", (err: NodeJS.ErrnoException) => resolve({ email, ok: false, error: err.code ?? err.message, at: Date.now() }));
    req.end(body);
  });
}

/** A call whose body arrives in two parts: the first now, the rest on finish(). */
interface Trickled {
  readonly started: Promise<void>;
  finish(): Promise<{ status: number; body: string; connection?: string }>;
}

function startTrickledHttp1(port: number, token: string, email: string): Trickled {
  const body = Buffer.from(JSON.stringify({ user: { email, displayName: "slow" } }));
  const half = body.length >> 1;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const req = http.request({
    host: "127.0.0.1",
    port,
    agent,
    method: "POST",
    path: "/anvil.users.v1.UserService/CreateUser",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "content-length": body.length },
  });
  const response = new Promise<{ status: number; body: string; connection?: string }>((resolve, reject) => {
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), connection: res.headers.connection }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
  const started = new Promise<void>((resolve) => req.write(body.subarray(0, half), () => resolve()));
  return {
    started: started.then(() => new Promise((r) => setTimeout(r, 100))),
    finish: async () => {
      req.end(body.subarray(half));
      try {
        return await response;
      } finally {
        agent.destroy();
      }
    },
  };
}

function startTrickledHttp2(port: number, token: string, email: string): Trickled & { goAway(): boolean } {
  const body = Buffer.from(JSON.stringify({ user: { email, displayName: "slow" } }));
  const half = body.length >> 1;
  const session = http2.connect(`http://127.0.0.1:${port}`);
  let goAway = false;
  session.on("goaway", () => (goAway = true));
  session.on("error", () => undefined);
  const stream = session.request({
    ":method": "POST",
    ":path": "/anvil.users.v1.UserService/CreateUser",
    "content-type": "application/json",
    authorization: `Bearer ${token}`,
  });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on("response", (headers) => (status = Number(headers[":status"])));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve({ status, body: Buffer.concat(chunks).toString() }));
    stream.on("error", reject);
  });
  const started = new Promise<void>((resolve) => stream.write(body.subarray(0, half), () => resolve()));
  return {
    started: started.then(() => new Promise((r) => setTimeout(r, 100))),
    goAway: () => goAway,
    finish: async () => {
      stream.end(body.subarray(half));
      try {
        return await response;
      } finally {
        session.close();
      }
    },
  };
}

/** Whether the port still accepts a new connection. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** The e-mail addresses of every user the gateway committed, read after it exited. */
async function storedEmails(kind: DatabaseKind, database: TestDatabase, pgliteDir: string): Promise<string[]> {
  if (kind === "postgres") {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      return (await client.query<{ email: string }>("select email from users")).rows.map((r) => r.email);
    } finally {
      await client.end();
    }
  }
  const { PGlite } = await import("@electric-sql/pglite");
  const db = await PGlite.create(pgliteDir);
  try {
    return (await db.query<{ email: string }>("select email from users")).rows.map((r) => r.email);
  } finally {
    await db.close();
  }
}
