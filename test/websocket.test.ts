import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code } from "@connectrpc/connect";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../gen/anvil/apikeys/v1/apikeys_pb.js";
import { LogLine_Level, Operation_State, OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { claim, type OperationClients, operationClients, runWorkflow, sequencesOf, until, watchWith } from "./support/operations.js";
import { captureLog } from "./support/log-capture.js";
import { startServer, type TestServer } from "./support/server.js";
import { openSocket, type SocketWatch } from "./support/websocket.js";

const run = promisify(execFile);

describe.each(databaseKinds)("WebSocket watches on %s", (kind) => {
  let server: TestServer;
  let c: OperationClients;
  let viewer: string;
  const { log, lines: logs } = captureLog();
  let kinds = 0;
  const freshKind = () => `ws-${++kinds}`;
  const wsUrl = (id: string, query = "") => `${server.baseUrl.replace("http:", "ws:")}/ws/operations/${id}${query}`;
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const sequences = (w: SocketWatch) => w.messages.map((m) => m.sequence as number);

  beforeAll(async () => {
    server = await startServer(kind, {
      env: {
        ANVIL_OPERATIONS_POLL_MS: "200",
        // Also the ping interval.
        ANVIL_WATCH_KEEPALIVE_MS: "1000",
        ANVIL_MAX_STREAMS_PER_PRINCIPAL: "5",
        ANVIL_WS_AUTH_TIMEOUT_MS: "500",
      },
      // Every log line at every level, to check no credential ever reaches one.
      log,
    });
    c = await operationClients(server);
    viewer = await server.token("acme-viewer");
  });
  afterAll(() => server?.close());

  /** Claims the operation's only task; returns its lease. */
  async function lease(k: string) {
    const task = (await claim(c, "w1", { kinds: [k] }))!;
    return { taskId: task.id, leaseToken: task.leaseToken };
  }

  it("watches an operation live to completion: one typed message per event, no gaps, then 1000", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const ws = openSocket(wsUrl(op.id), bearer(viewer));
    await ws.opened;
    const rpc = watchWith(clientFor(OperationService, "connect-json", server.baseUrl, viewer), op.id);
    const l = await lease(k);
    await c.workers.reportProgress({ ...l, progress: 0.5, stage: "cloning", logs: [{ level: LogLine_Level.WARN, message: "cloned" }] });
    await c.workers.reportProgress({ ...l, progress: 0.75, message: "almost" });
    await c.workers.completeTask({ ...l, outcome: { case: "result", value: { answer: 42 } } });
    expect((await ws.closed).code).toBe(1000);
    expect(await rpc.done).toBeUndefined();
    // Every event, exactly once, in order: the same sequences as the RPC.
    expect(sequences(ws)).toEqual(sequencesOf(rpc.messages));
    expect(sequences(ws)).toEqual(sequences(ws).map((_, i) => i + 1));
    for (const m of ws.messages) {
      expect(m.operation_id).toBe(op.id);
      expect(Number.isNaN(Date.parse(m.timestamp))).toBe(false);
      expect(["progress", "log", "error", "completion"]).toContain(m.type);
    }
    expect(ws.messages.find((m) => m.type === "log" && m.message === "cloned")).toMatchObject({ level: "warn" });
    expect(ws.messages.find((m) => m.type === "progress" && m.message === "almost")).toMatchObject({ progress: 75, stage: "cloning" });
    // A stage change is a progress message carrying the new stage.
    expect(ws.messages.find((m) => m.type === "progress" && m.stage === "cloning" && m.message === "")).toBeDefined();
    expect(ws.messages.at(-1)).toMatchObject({ type: "completion", status: "succeeded", result: { steps: { only: { answer: 42 } } }, error: null });
  });

  it("keeps a client that answers a ping only after the process it shares with the gateway stalled past the next ping", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    // Pongs by hand, so the first one can wait out a stall of the whole process (server and client share it
    // here, as on a loaded CI machine): the gateway's next ping comes due before it has read the answer.
    const ws = openSocket(wsUrl(op.id), bearer(viewer), { autoPong: false });
    const stall = new Promise<number>((resolve) =>
      ws.ws.on("ping", (data) => {
        if (ws.pings.count === 1) {
          const end = performance.now() + 1_300; // the ping interval (ANVIL_WATCH_KEEPALIVE_MS) and then some
          while (performance.now() < end);
          resolve(ws.pings.count);
        }
        ws.ws.pong(data);
      }),
    );
    await ws.opened;
    const pingsAtStall = await stall;
    await until(
      () => {
        if (ws.ws.readyState !== WebSocket.OPEN) throw new Error("the gateway cut the socket off after the stall");
        return ws.pings.count > pingsAtStall;
      },
      10_000,
      "a ping after the stall",
    );
    const l = await lease(k);
    await c.workers.completeTask({ ...l, outcome: { case: "result", value: {} } });
    expect((await ws.closed).code).toBe(1000);
    expect(ws.messages.at(-1)).toMatchObject({ type: "completion", status: "succeeded" });
    expect(sequences(ws)).toEqual(sequences(ws).map((_, i) => i + 1));
  });

  it("reports task errors as error messages", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const ws = openSocket(wsUrl(op.id), bearer(viewer));
    await ws.opened;
    const l = await lease(k);
    await c.workers.completeTask({ ...l, outcome: { case: "error", value: { code: 3, message: "bad input", retryable: false } } });
    expect((await ws.closed).code).toBe(1000);
    expect(ws.messages.find((m) => m.type === "error")).toMatchObject({ error_code: "INVALID_ARGUMENT", error_message: "bad input", details: { retryable: false } });
    expect(ws.messages.at(-1)).toMatchObject({ type: "completion", status: "failed", error: { code: "INVALID_ARGUMENT" } });
    expect(sequences(ws)).toEqual(sequences(ws).map((_, i) => i + 1));
  });

  it("resumes after a forced disconnect with after_sequence: nothing missed or repeated", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const first = openSocket(wsUrl(op.id), bearer(viewer));
    await first.opened;
    const l = await lease(k);
    await c.workers.reportProgress({ ...l, progress: 0.2 });
    await until(() => first.messages.length >= 3, 10_000, "three messages");
    first.ws.terminate();
    await first.closed;
    await c.workers.reportProgress({ ...l, progress: 0.6, logs: [{ level: LogLine_Level.INFO, message: "while away" }] });
    await c.workers.completeTask({ ...l, outcome: { case: "result", value: {} } });
    const resumed = openSocket(wsUrl(op.id, `?after_sequence=${sequences(first).at(-1)}`), bearer(viewer));
    expect((await resumed.closed).code).toBe(1000);
    const total = Number((await c.operations.getOperation({ id: op.id })).operation!.lastSequence);
    expect([...sequences(first), ...sequences(resumed)]).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    // At the end already: closes at once with 1000 and nothing to say.
    const atEnd = openSocket(wsUrl(op.id, `?after_sequence=${total}`), bearer(viewer));
    expect((await atEnd.closed).code).toBe(1000);
    expect(atEnd.messages).toEqual([]);
    expect((await openSocket(wsUrl(op.id, "?after_sequence=-1"), bearer(viewer)).closed).code).toBe(4400);
  });

  it("takes the credential from an access_token or api_key query parameter, or a first auth message, and never logs it", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const token = await server.token("acme-viewer", { sub: "ws-query" });
    const admin = clientFor(ApiKeyService, "connect-json", server.baseUrl, await server.token());
    const { secret } = await admin.createApiKey({ apiKey: { displayName: "dashboard", roles: ["viewer"] } });
    const byToken = openSocket(wsUrl(op.id, `?access_token=${token}`));
    const byKey = openSocket(wsUrl(op.id, `?api_key=${secret}`));
    const byMessage = openSocket(wsUrl(op.id));
    await Promise.all([byToken.opened, byKey.opened, byMessage.opened]);
    byMessage.ws.send(JSON.stringify({ type: "auth", token }));
    const l = await lease(k);
    await c.workers.completeTask({ ...l, outcome: { case: "result", value: {} } });
    for (const w of [byToken, byKey, byMessage]) {
      expect((await w.closed).code).toBe(1000);
      expect(w.messages.at(-1)).toMatchObject({ type: "completion" });
    }
    await until(() => logs.filter((line) => line.includes("WatchOperation") && line.includes('"code":"ok"')).length >= 3, 5_000, "the access log lines");
    const text = logs.join("");
    expect(text).not.toContain(token);
    expect(text).not.toContain(token.split(".")[2]!);
    expect(text).not.toContain(secret);
  });

  it("closes with 1008 for a bad, missing, late or unpermitted credential, and 1009 for a message too big", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: freshKind() }]);
    const badToken = openSocket(wsUrl(op.id, "?access_token=nope"));
    const badMessage = openSocket(wsUrl(op.id));
    await badMessage.opened;
    badMessage.ws.send("hello");
    const silent = openSocket(wsUrl(op.id));
    const worker = openSocket(wsUrl(op.id), bearer(await server.token("acme-worker")));
    const twice = openSocket(wsUrl(op.id, `?access_token=${viewer}`), bearer(viewer));
    for (const w of [badToken, badMessage, silent, worker, twice]) expect((await w.closed).code).toBe(1008);
    expect((await worker.closed).reason).toMatch(/^PermissionDenied: permission operations.read required/);
    const big = openSocket(wsUrl(op.id));
    await big.opened;
    big.ws.send(JSON.stringify({ type: "auth", token: "x".repeat(64 * 1024) }));
    expect((await big.closed).code).toBe(1009);
    await c.operations.cancelOperation({ id: op.id });
  });

  it("closes with 4404 for an unknown operation or another tenant's, 4400 for a malformed id; other /ws/ paths are 404", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: freshKind() }]);
    expect((await openSocket(wsUrl("00000000-0000-4000-8000-000000000000"), bearer(viewer)).closed).code).toBe(4404);
    const other = await openSocket(wsUrl(op.id), bearer(await server.token("globex-admin"))).closed;
    expect(other.code).toBe(4404);
    expect((await openSocket(wsUrl("not-a-uuid"), bearer(viewer)).closed).code).toBe(4400);
    await expect(openSocket(`${server.baseUrl.replace("http:", "ws:")}/ws/elsewhere`, bearer(viewer)).opened).rejects.toThrow("handshake answered 404");
    // A plain request to the path is not an upgrade: the REST router's 404.
    expect((await fetch(`${server.baseUrl}/ws/operations/${op.id}`, { headers: bearer(viewer) })).status).toBe(404);
    await c.operations.cancelOperation({ id: op.id });
  });

  it("counts WebSockets in the per-credential stream cap: 1013 over the cap, and the slot comes back on close", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: freshKind() }]);
    const capped = await server.token("acme-viewer", { sub: "capped" });
    const open = Array.from({ length: 5 }, () => openSocket(wsUrl(op.id), bearer(capped)));
    await Promise.all(open.map((w) => w.opened));
    // Each socket holds its slot once its watch runs: the RPC (same credential) is refused.
    await until(async () => {
      const rpc = watchWith(clientFor(OperationService, "connect-json", server.baseUrl, capped), op.id);
      const err = await Promise.race([rpc.done, new Promise((r) => setTimeout(() => r("open"), 300))]);
      rpc.cancel();
      return (err as { code?: Code } | undefined)?.code === Code.ResourceExhausted;
    }, 10_000, "the cap to be reached");
    const over = openSocket(wsUrl(op.id), bearer(capped));
    const closed = await over.closed;
    expect(closed.code).toBe(1013);
    expect(closed.reason).toContain("at most 5");
    open[0]!.ws.close();
    await open[0]!.closed;
    let again = openSocket(wsUrl(op.id), bearer(capped));
    await until(async () => {
      if (again.pings.count > 0) return true;
      const done = await Promise.race([again.closed, new Promise((r) => setTimeout(() => r("open"), 200))]);
      if (done !== "open") again = openSocket(wsUrl(op.id), bearer(capped));
      return false;
    }, 10_000, "a socket that stays open (pinged) after a slot came back");
    for (const w of [...open, again]) w.ws.close();
    await c.operations.cancelOperation({ id: op.id });
  });

  it("closes a consumer that leaves its send buffer full with 4429, having sent every message before in order", async () => {
    // A server of its own: pings far apart, so the client that stops reading is judged by its send buffer, not cut off for a missed pong.
    const slow = await startServer(kind, {
      env: { ANVIL_OPERATIONS_POLL_MS: "200", ANVIL_WATCH_KEEPALIVE_MS: "600000", ANVIL_WS_SEND_BUFFER_BYTES: "65536", ANVIL_WS_SLOW_CONSUMER_MS: "500" },
    });
    try {
      const sc = await operationClients(slow);
      const k = freshKind();
      const op = await runWorkflow(sc, [{ name: "only", kind: k }]);
      const ws = openSocket(`${slow.baseUrl.replace("http:", "ws:")}/ws/operations/${op.id}`, bearer(await slow.token("acme-viewer")));
      await ws.opened;
      const task = (await claim(sc, "w1", { kinds: [k] }))!;
      const l = { taskId: task.id, leaseToken: task.leaseToken };
      // The client stops reading: the server's socket buffers fill.
      ws.ws.pause();
      const exhausted = async () => {
        const line = (await (await fetch(`${slow.baseUrl}/metrics`)).text())
          .split("\n")
          .find((m) => m.startsWith("grpc_server_handled_total") && m.includes('protocol="websocket"') && m.includes('grpc_code="ResourceExhausted"'));
        return line === undefined ? 0 : Number(line.split(" ").at(-1));
      };
      await sc.workers.reportProgress({ ...l, progress: 0.5, logs: [{ level: LogLine_Level.INFO, message: "before the flood" }] });
      // One message bigger than the kernel's socket buffers hold (a few MiB on loopback): it can never be taken.
      await sc.workers.completeTask({ ...l, outcome: { case: "result", value: { blob: "x".repeat(6 * 1024 * 1024) } } });
      await until(async () => (await exhausted()) > 0, 30_000, "the server to give up on the slow consumer");
      ws.ws.resume();
      const closed = await ws.closed;
      expect(closed.code).toBe(4429);
      expect(closed.reason).toContain("slow consumer");
      expect(ws.messages.length).toBeGreaterThan(0);
      expect(sequences(ws)).toEqual(sequences(ws).map((_, i) => i + 1));
    } finally {
      await slow.close();
    }
    // Megabytes through validation, the database and the watch on a shared machine: more time than the default.
  }, 120_000);

  it("serves other upgrade requests (curl --http2 asks for h2c) as plain HTTP/1.1, with or without a body", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: freshKind() }]);
    const { stdout } = await run("curl", ["-sS", "--http2", "--max-time", "20", "-H", `Authorization: Bearer ${viewer}`, "-w", "\n%{http_code} %{http_version}", `${server.baseUrl}/v1/operations/${op.id}`]);
    const [body, status] = [stdout.slice(0, stdout.lastIndexOf("\n")), stdout.slice(stdout.lastIndexOf("\n") + 1)];
    expect(status).toBe("200 1.1");
    expect(JSON.parse(body)).toMatchObject({ id: op.id });
    // With a body the request is parsed again without its Upgrade header: read, authorized and served like any other.
    const curlPost = (token: string) =>
      run("curl", ["-sS", "--http2", "--max-time", "20", "-w", "\n%{http_code}", "-H", `Authorization: Bearer ${token}`, "-H", "Content-Type: application/json", "-d", "{}", `${server.baseUrl}/v1/operations/${op.id}:cancel`]);
    const denied = await curlPost(viewer);
    expect(denied.stdout.slice(denied.stdout.lastIndexOf("\n") + 1)).toBe("403");
    const cancelled = await curlPost(await server.token("acme-editor"));
    expect(cancelled.stdout.slice(cancelled.stdout.lastIndexOf("\n") + 1)).toBe("200");
    expect(JSON.parse(cancelled.stdout.slice(0, cancelled.stdout.lastIndexOf("\n")))).toMatchObject({ id: op.id });
    expect((await c.operations.getOperation({ id: op.id })).operation!.state).toBe(Operation_State.CANCELLED);
  });

  // Last: drains the shared server.
  it("pings idle sockets, and closes them with 1001 when the instance drains", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: freshKind() }]);
    const ws = openSocket(wsUrl(op.id), bearer(viewer));
    await until(() => ws.pings.count >= 1, 10_000, "a ping");
    server.app.drain();
    expect((await ws.closed).code).toBe(1001);
  });
});

describe("WebSocket watches over TLS (wss://, HTTP/1.1 chosen by ALPN beside h2)", () => {
  it("upgrades on the TLS port and answers through the same route", async () => {
    const dir = mkdtempSync(join(tmpdir(), "anvil-wss-"));
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    try {
      await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return; // no openssl: tls.test.ts says so too
      throw err;
    }
    const server = await startServer("pglite", { env: { TLS_CERT: cert, TLS_KEY: key } });
    try {
      const ws = new WebSocket(`wss://localhost:${server.port}/ws/operations/00000000-0000-4000-8000-000000000000`, {
        ca: readFileSync(cert),
        headers: { authorization: `Bearer ${await server.token("acme-viewer")}` },
      });
      const closed = await new Promise<number>((resolve, reject) => {
        ws.once("close", (code) => resolve(code));
        ws.once("unexpected-response", (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
      });
      expect(closed).toBe(4404);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
