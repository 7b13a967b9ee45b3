import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseKinds } from "../support/databases.js";
import { startServer, type TestServer } from "../support/server.js";

// Node's HTTP/1.1 server answers a request it cannot parse (headers over
// maxHeaderSize, a malformed request line) and destroys the socket at once.
// A client still sending its body then gets a TCP reset, which discards the
// answer: it sees ECONNRESET instead of 431 or 400, and cannot tell a
// refusal from a crash. The gateway closes such connections gracefully, and
// so any connection that closes after an answer while the client is still
// sending its body (a body refused as too large, with Connection: close).
describe.each(databaseKinds)("refused HTTP/1.1 requests close without a reset (%s)", (kind) => {
  const limit = 2 ** 20;
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: { ANVIL_MAX_REQUEST_BYTES: String(limit) } });
  });
  afterAll(async () => {
    await server?.close();
  });

  const body = new Uint8Array(4 * 2 ** 20).fill(0x20);

  it("answers headers over the size limit with 431 while the client is still sending its body", async () => {
    const url = `${server.baseUrl}/v1/workflows?request_id=${"r".repeat(64 * 1024)}`;
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) {
      try {
        const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
        outcomes.push(`http_${res.status}`);
        await res.arrayBuffer().catch(() => undefined);
      } catch (err) {
        outcomes.push(`error:${(err as { cause?: { code?: string } }).cause?.code ?? String(err)}`);
      }
    }
    expect(outcomes).toEqual(Array(10).fill("http_431"));
  });

  it("answers a malformed request with 400 and closes without a reset while the client is still sending its body", async () => {
    const socket = net.connect(server.port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    const received: Buffer[] = [];
    socket.on("data", (d: Buffer) => received.push(d));
    const closed = new Promise<string>((resolve) => {
      socket.once("error", (err: NodeJS.ErrnoException) => resolve(`error:${err.code}`));
      socket.once("close", () => resolve("closed"));
    });
    socket.write(`POST /v1/workflows HTTP/1.1\r\nHost: x\r\nBad Header\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.write(body);
    expect(await closed).toBe("closed");
    expect(Buffer.concat(received).toString("latin1")).toMatch(/^HTTP\/1\.1 400 /);
  });

  it("does not hold a refused connection open for a client that keeps sending", async () => {
    const socket = net.connect(server.port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.on("data", () => {});
    const started = Date.now();
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.on("error", () => {});
    socket.write(`POST /v1/workflows HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n`);
    const drip = setInterval(() => socket.writable && socket.write("x"), 50);
    await closed;
    clearInterval(drip);
    // The linger is a few seconds at most, whatever the client does.
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("answers a body over the limit with its refusal, not a reset, when the client asked to close and is still sending", async () => {
    const token = await server.token();
    const socket = net.connect(server.port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    // Nothing is read while the upload goes on: a reset from the server
    // would discard the answer before the client looks at it.
    socket.pause();
    const outcome = new Promise<string>((resolve) => {
      socket.once("error", (err: NodeJS.ErrnoException) => resolve(`error:${err.code}`));
      socket.once("close", () => resolve("closed"));
    });
    socket.write(
      `POST /anvil.users.v1.UserService/CreateUser HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    const piece = 64 * 1024;
    const chunk = Buffer.concat([Buffer.from(`${piece.toString(16)}\r\n`), Buffer.alloc(piece, 0x20), Buffer.from("\r\n")]);
    // Keep sending well past the refusal (at 1 MiB): a server that closes at
    // once makes these writes fail; one that lingers reads and drops them.
    const started = Date.now();
    for (let sent = 0; sent < 64 * limit && Date.now() - started < 300 && !socket.destroyed; sent += piece) {
      if (!socket.write(chunk)) await new Promise((resolve) => (socket.once("drain", resolve), socket.once("close", resolve)));
    }
    const received: Buffer[] = [];
    socket.on("data", (d: Buffer) => received.push(d));
    socket.resume();
    expect(await outcome).toBe("closed");
    const answer = Buffer.concat(received).toString("latin1");
    expect(answer).toMatch(/^HTTP\/1\.1 429 /);
    expect(answer).toContain('"code":"resource_exhausted"');
  });
});
