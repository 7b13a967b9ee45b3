import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { listen } from "../../src/server/listener.js";
import { databaseKinds } from "../support/databases.js";
import { operationClients, runWorkflow, watchWith } from "../support/operations.js";
import { type GatewayProcess, startGatewayProcess } from "../support/gateway-process.js";
import { startServer, type TestServer } from "../support/server.js";

// Small limits, so each attack is cut within a test's time; the same code
// paths enforce the defaults (README, "Settings").
const limits = {
  ANVIL_SNIFF_TIMEOUT_MS: "400",
  ANVIL_HEADERS_TIMEOUT_MS: "500",
  ANVIL_REQUEST_TIMEOUT_MS: "1000",
  ANVIL_KEEPALIVE_TIMEOUT_MS: "400",
  ANVIL_HTTP2_IDLE_TIMEOUT_MS: "500",
};
// Timers fire late on a loaded two-core machine; a cut must still come well before "never".
const slackMs = 1_500;
// How long /healthz may take while the server is under attack.
const probeBoundMs = 1_000;

/** Milliseconds until `socket` is closed by the server (rejects after `giveUpMs`). */
function closedWithin(socket: net.Socket, giveUpMs: number): Promise<{ ms: number; received: string }> {
  const start = performance.now();
  let received = "";
  socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
  socket.on("error", () => undefined);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`socket still open after ${giveUpMs} ms`));
    }, giveUpMs);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - start, received });
    });
  });
}

/** Writes `text` one byte every `everyMs` while the socket is open (repeating it, unless `once`). */
function trickle(socket: net.Socket, text: string, everyMs: number, once = false): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || !socket.writable || (once && i === text.length)) return clearInterval(timer);
    socket.write(text[i++ % text.length]!);
  }, everyMs);
  socket.once("close", () => clearInterval(timer));
}

/** GET /healthz on a fresh connection; its duration in ms. */
function probe(port: number): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/healthz", agent: false, timeout: 5_000 }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve(performance.now() - start) : reject(new Error(`healthz ${res.statusCode}`))));
    });
    req.on("timeout", () => req.destroy(new Error("healthz timed out")));
    req.on("error", reject);
  });
}

/** Probes /healthz every 100 ms until `done` settles; the slowest probe. */
async function slowestProbeDuring(port: number, done: Promise<unknown>): Promise<number> {
  let finished = false;
  void done.finally(() => (finished = true)).catch(() => undefined);
  let slowest = 0;
  do {
    slowest = Math.max(slowest, await probe(port));
    await new Promise((r) => setTimeout(r, 100));
  } while (!finished);
  return slowest;
}

type Answer = { status: number; headers: Record<string, unknown>; body: string };

/** The whole answer on an HTTP/2 stream, trailers merged into the headers; rejects after `giveUpMs`. */
function answerOf(stream: http2.ClientHttp2Stream, giveUpMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${giveUpMs} ms: the server waits for the body`)), giveUpMs);
    stream.once("response", (headers) => {
      const all: Record<string, unknown> = { ...headers };
      let body = "";
      stream.on("data", (d: Buffer) => (body += d.toString("latin1")));
      stream.once("trailers", (t) => Object.assign(all, t));
      // The answer is complete when its side of the stream ends; the
      // client's side may still be open (it never finished its body).
      const done = () => {
        clearTimeout(timer);
        resolve({ status: Number(headers[":status"]), headers: all, body });
      };
      stream.once("end", done);
      stream.once("close", done);
    });
  });
}

/** What an unauthenticated caller sends on each protocol, and how the refusal reads. */
type Refusal = { what: string; path: string; contentType: string; refused: (status: number, headers: Record<string, unknown>) => boolean };

const unary = "/anvil.users.v1.UserService/CreateUser";
const serverStream = "/anvil.operations.v1.OperationService/WatchOperation";
const unaryRefusals: Refusal[] = [
  { what: "Connect unary", path: unary, contentType: "application/json", refused: (s) => s === 401 },
  { what: "gRPC unary", path: unary, contentType: "application/grpc", refused: (_, h) => h["grpc-status"] === "16" },
  { what: "gRPC-Web unary", path: unary, contentType: "application/grpc-web+proto", refused: (s) => s === 200 },
];

/**
 * Sends the headers and the first 64 KiB of a 10 MiB body (enveloped
 * protocols: an envelope declaring the whole message) and waits at most 3 s
 * for the answer: a server that reads the body first would wait for the rest.
 */
async function refusedBeforeBody(baseUrl: string, { path, contentType, refused }: Refusal): Promise<void> {
  const session = http2.connect(baseUrl);
  session.on("error", () => undefined);
  try {
    const total = 10 * 1024 * 1024;
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": contentType, "content-length": String(total) });
    stream.on("error", () => undefined);
    const first = Buffer.alloc(64 * 1024, 0x20);
    if (contentType.startsWith("application/grpc") || contentType.startsWith("application/connect+")) {
      first.writeUInt8(0, 0);
      first.writeUInt32BE(total - 5, 1);
    }
    stream.write(first);
    const answer = await answerOf(stream, 3_000);
    expect(refused(answer.status, answer.headers), JSON.stringify(answer)).toBe(true);
    // gRPC-Web and Connect streams carry the status in the body.
    if (answer.status === 200 && answer.headers["grpc-status"] === undefined) expect(answer.body).toMatch(/grpc-status: ?16|"code":"unauthenticated"/);
  } finally {
    session.destroy();
  }
}

function connect(port: number): net.Socket {
  return net.connect(port, "127.0.0.1");
}

describe.each(databaseKinds)("connections bounded in time (%s)", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    // The fast path off: these attacks reach connect's universal handler (the
    // gateway in its own process below serves with the fast path on).
    server = await startServer(kind, { env: { ...limits, ANVIL_FAST_UNARY: "off" } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("closes a silent socket at the sniff limit", async () => {
    const closed = closedWithin(connect(server.port), 400 + slackMs);
    expect(await slowestProbeDuring(server.port, closed)).toBeLessThan(probeBoundMs);
    const { ms } = await closed;
    expect(ms).toBeGreaterThanOrEqual(350);
  });

  it("closes a socket trickling the HTTP/2 preface at the sniff limit (a deadline, not an inactivity timer)", async () => {
    const socket = connect(server.port);
    // All but the last byte of the preface, one every 100 ms: 2.3 s of
    // activity, so an inactivity timer would not fire before the give-up.
    trickle(socket, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r", 100, true);
    const closed = closedWithin(socket, 400 + slackMs);
    expect(await slowestProbeDuring(server.port, closed)).toBeLessThan(probeBoundMs);
    await closed;
  });

  it("answers 408 and closes an HTTP/1.1 slowloris (one header byte at a time) at the headers limit", async () => {
    const socket = connect(server.port);
    socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    trickle(socket, "X-Slow: a\r\n", 30);
    const closed = closedWithin(socket, 500 + slackMs);
    expect(await slowestProbeDuring(server.port, closed)).toBeLessThan(probeBoundMs);
    const { ms, received } = await closed;
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    expect(ms).toBeGreaterThanOrEqual(450);
  });

  it("answers 408 and closes an HTTP/1.1 request whose body trickles, at the request limit", async () => {
    const socket = connect(server.port);
    socket.write(`POST /anvil.users.v1.UserService/ListUsers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ${await server.token()}\r\nContent-Length: 100000\r\n\r\n`);
    trickle(socket, " ", 30);
    const { ms, received } = await closedWithin(socket, 1000 + slackMs);
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    expect(ms).toBeGreaterThanOrEqual(900);
  });

  it("closes an idle HTTP/1.1 keep-alive connection after the keep-alive limit", async () => {
    const socket = connect(server.port);
    socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    // Node adds a fixed 1 s to keepAliveTimeout before it closes (the
    // `Keep-Alive: timeout=` it announces stays the configured value).
    const { received } = await closedWithin(socket, 400 + 1_000 + slackMs);
    expect(received).toMatch(/^HTTP\/1\.1 200/);
    expect(received).toMatch(/Keep-Alive: timeout=0/i);
  });

  it("sends GOAWAY to many idle HTTP/2 sessions and closes them at the idle limit", async () => {
    const sessions = Array.from({ length: 50 }, () => http2.connect(`http://127.0.0.1:${server.port}`));
    const start = performance.now();
    const goaways = sessions.map(
      (s) =>
        new Promise<number>((resolve, reject) => {
          let away = false;
          s.on("error", () => undefined);
          s.once("goaway", () => (away = true));
          s.once("close", () => (away ? resolve(performance.now() - start) : reject(new Error("closed without GOAWAY"))));
        }),
    );
    const all = Promise.all(goaways);
    expect(await slowestProbeDuring(server.port, all)).toBeLessThan(probeBoundMs);
    const times = await all;
    expect(Math.min(...times)).toBeGreaterThanOrEqual(450);
    expect(Math.max(...times)).toBeLessThan(500 + slackMs);
  });

  it("keeps an HTTP/2 session with an open stream, then closes it once idle", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => undefined);
    const closed = new Promise<number>((r) => session.once("close", () => r(performance.now())));
    // A request that takes longer than the idle limit: its body arrives after 800 ms.
    const stream = session.request({ ":method": "POST", ":path": "/anvil.users.v1.UserService/ListUsers", "content-type": "application/json", authorization: `Bearer ${await server.token()}` });
    stream.resume();
    await new Promise((r) => setTimeout(r, 800));
    stream.end("{}");
    const answered = await new Promise<number>((resolve) => stream.once("response", () => resolve(performance.now())));
    const closedAt = await closed;
    expect(closedAt - answered).toBeGreaterThanOrEqual(400);
  });

  it("resets an HTTP/2 stream whose body trickles, at the request limit, and stays responsive", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => undefined);
    const stream = session.request({ ":method": "POST", ":path": "/anvil.users.v1.UserService/ListUsers", "content-type": "application/json", authorization: `Bearer ${await server.token()}` });
    stream.on("error", () => undefined);
    const timer = setInterval(() => stream.write(" "), 30);
    const start = performance.now();
    const closed = new Promise<number>((r) => stream.once("close", () => r(performance.now() - start)));
    expect(await slowestProbeDuring(server.port, closed)).toBeLessThan(probeBoundMs);
    clearInterval(timer);
    expect(await closed).toBeLessThan(1000 + slackMs);
    expect(stream.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    session.destroy();
  });

  it.each(unaryRefusals)("$what (universal handler): refuses an unauthenticated body from its headers, before it is sent", async (refusal) => {
    await refusedBeforeBody(server.baseUrl, refusal);
  });

  it("leaves a long server stream alone: its request is complete, and an open stream keeps its session", async () => {
    const c = await operationClients(server, "grpc");
    const op = await runWorkflow(c);
    const watch = watchWith(c.operations, op.id);
    // Longer than the request limit (1 s) and the HTTP/2 idle limit (0.5 s).
    const ended = await Promise.race([watch.done.then(() => "ended"), new Promise((r) => setTimeout(() => r("open"), 2_500))]);
    watch.cancel();
    expect(ended).toBe("open");
    expect(watch.messages.length).toBeGreaterThan(0);
  });

  it("closes idle connections at once when draining (closeIdleConnections works on the sniffed HTTP/1 server)", async () => {
    // A second listener on the same app, with the default limits (65 s keep-alive).
    const config = loadConfig({ PORT: "0", HOST: "127.0.0.1" });
    const listening = await listen(server.app.handle, { ...config });
    const socket = connect(listening.port);
    socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await new Promise((r) => socket.once("data", r));
    const silent = connect(listening.port);
    await new Promise((r) => silent.once("connect", r));
    const closed = closedWithin(socket, 2_000);
    const silentClosed = closedWithin(silent, 2_000);
    const start = performance.now();
    await listening.close(10_000);
    expect(performance.now() - start).toBeLessThan(2_000);
    expect((await closed).ms).toBeLessThan(2_000);
    expect((await silentClosed).ms).toBeLessThan(2_000);
  });
});

describe.each(databaseKinds)("attacks on a gateway in its own process (%s)", (kind) => {
  let gateway: GatewayProcess;
  beforeAll(async () => {
    gateway = await startGatewayProcess(kind);
  });
  afterAll(async () => {
    await gateway?.close();
  });

  // The fast unary path, server streams (connect's universal handler) and
  // REST; the universal handler's unary path is tried on a server with the
  // fast path off (above).
  it.each<Refusal>([
    ...unaryRefusals.map((r) => ({ ...r, what: `${r.what} (fast path)` })),
    { what: "Connect server stream", path: serverStream, contentType: "application/connect+json", refused: (s) => s === 200 },
    { what: "gRPC server stream", path: serverStream, contentType: "application/grpc", refused: (_, h) => h["grpc-status"] === "16" },
    { what: "REST", path: "/v1/users", contentType: "application/json", refused: (s) => s === 401 },
  ])("$what: refuses an unauthenticated body from its headers, before it is sent", async (refusal) => {
    await refusedBeforeBody(gateway.baseUrl, refusal);
  });

  it("survives rapid reset (2,000 streams opened and cancelled at once): the session is cut, the server answers", async () => {
    const session = http2.connect(gateway.baseUrl);
    session.on("error", () => undefined);
    await new Promise((r) => session.once("connect", r));
    const closed = new Promise<void>((r) => session.once("close", () => r()));
    for (let round = 0; round < 20 && !session.destroyed; round++) {
      for (let i = 0; i < 100 && !session.destroyed; i++) {
        const s = session.request({ ":method": "POST", ":path": "/anvil.users.v1.UserService/ListUsers", "content-type": "application/grpc" });
        s.on("error", () => undefined);
        s.close(http2.constants.NGHTTP2_CANCEL);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    // Node's rapid-reset guard (nghttp2's stream-reset rate limit) ends the
    // session with GOAWAY; the attacker gets nothing more from it. The bound
    // is generous: on a loaded 2-core machine the client itself needs
    // seconds to push 2,000 HEADERS+RST pairs out.
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error("session not cut")), 30_000))]);
    expect(gateway.alive()).toBe(true);
    expect(await probe(gateway.port)).toBeLessThan(probeBoundMs);
  });

  it("does not buffer 10 MiB bodies on many HTTP/2 streams: all refused at once, memory flat", async () => {
    await gateway.gc();
    const before = await gateway.stats();
    await gateway.reset();
    // As much as a stream's flow-control window lets a client send unread.
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    // The client buffers what it sends too: 250 × 64 KiB is over its default 10 MB.
    const sessions = Array.from({ length: 4 }, () => http2.connect(gateway.baseUrl, { maxSessionMemory: 1_000 }));
    for (const s of sessions) s.on("error", () => undefined);
    const start = performance.now();
    const answers: Promise<Answer>[] = [];
    for (const session of sessions) {
      for (let i = 0; i < 250; i++) {
        const stream = session.request({ ":method": "POST", ":path": "/anvil.users.v1.UserService/CreateUser", "content-type": "application/grpc", "content-length": String(10 * 1024 * 1024) });
        stream.on("error", () => undefined);
        stream.write(chunk);
        answers.push(answerOf(stream, 10_000));
      }
    }
    const codes = (await Promise.all(answers)).map((a) => a.headers["grpc-status"]);
    const elapsed = performance.now() - start;
    expect(new Set(codes)).toEqual(new Set(["16"]));
    const after = await gateway.stats();
    for (const s of sessions) s.destroy();
    expect(elapsed).toBeLessThan(10_000);
    // 1,000 × 10 MiB buffered would be 10 GB; each stream's flow-control
    // window (64 KiB) is all the server may hold of a body it never reads.
    expect(after.rssBytes - before.rssBytes).toBeLessThan(200 * 1024 * 1024);
    expect(await probe(gateway.port)).toBeLessThan(probeBoundMs);
  });
});
