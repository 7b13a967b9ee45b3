import { Writable } from "node:stream";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OperationService } from "../../gen/anvil/operations/v1/operations_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { databaseKinds } from "../support/databases.js";
import { claim, operationClients, runWorkflow, until, watchWith } from "../support/operations.js";
import { type Protocol, protocols } from "../support/clients.js";
import { startServer, type TestServer } from "../support/server.js";

/**
 * A server stream ends with why it ended: its deadline (DEADLINE_EXCEEDED),
 * the instance draining (UNAVAILABLE) — never OK, which a client that does
 * not enforce deadlines itself would take for a finished watch. The
 * deadline is sent as a bare header, so the client below does not know of
 * it and reports only what the server said.
 */
const quiet = { ANVIL_OPERATIONS_POLL_MS: "200", ANVIL_WATCH_KEEPALIVE_MS: "60000", ANVIL_MAX_STREAMS_PER_PRINCIPAL: "100" };

function transportWithServerDeadline(protocol: Protocol, baseUrl: string, token: string, deadlineMs: number): Transport {
  const interceptors: Interceptor[] = [
    (next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      if (protocol.startsWith("connect")) req.header.set("connect-timeout-ms", String(deadlineMs));
      else req.header.set("grpc-timeout", `${deadlineMs}m`);
      return next(req);
    },
  ];
  switch (protocol) {
    case "connect-json":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, interceptors });
    case "connect-binary":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors });
    case "grpc":
      return createGrpcTransport({ baseUrl, interceptors });
  }
}

/** Collects the gateway's JSON log lines. */
function captureLog(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: "info" }, sink), lines };
}

describe.each(databaseKinds)("stream status on %s", (kind) => {
  let server: TestServer;
  let lines: Array<Record<string, unknown>>;
  beforeAll(async () => {
    const captured = captureLog();
    lines = captured.lines;
    server = await startServer(kind, { env: quiet, log: captured.log });
  });
  afterAll(() => server?.close());

  it.each(protocols)("a watch cut by its deadline ends DEADLINE_EXCEEDED over %s, and the access log says so with its real duration", async (protocol) => {
    const c = await operationClients(server);
    const op = await runWorkflow(c, [{ name: "only", kind: `never-claimed-${protocol}` }]);
    const token = await server.token("acme-editor");
    const client = createClient(OperationService, transportWithServerDeadline(protocol, server.baseUrl, token, 800));
    const started = Date.now();
    const received: unknown[] = [];
    const ended = await (async () => {
      try {
        for await (const m of client.watchOperation({ id: op.id })) received.push(m);
        return undefined;
      } catch (err) {
        return err;
      }
    })();
    const elapsed = Date.now() - started;
    expect(received.length).toBeGreaterThanOrEqual(1);
    expect(ended, "the stream must not end OK").toBeInstanceOf(ConnectError);
    expect(Code[(ended as ConnectError).code]).toBe(Code[Code.DeadlineExceeded]);
    expect(elapsed).toBeGreaterThanOrEqual(750);
    expect(elapsed).toBeLessThan(5_000);
    await until(() => lines.some((l) => l.rpc === "anvil.operations.v1.OperationService/WatchOperation" && l.code === "DeadlineExceeded"), 2_000, "the access log line");
    const line = lines.findLast((l) => l.rpc === "anvil.operations.v1.OperationService/WatchOperation")!;
    expect(line.code).toBe("DeadlineExceeded");
    expect(line.ms as number).toBeGreaterThanOrEqual(750);
    lines.length = 0;
  });

  it("a health Watch cut by its deadline ends DEADLINE_EXCEEDED", async () => {
    const health = createClient(Health, transportWithServerDeadline("grpc", server.baseUrl, "", 500));
    const seen: unknown[] = [];
    const ended = await (async () => {
      try {
        for await (const m of health.watch({ service: "" })) seen.push(m);
      } catch (err) {
        return err;
      }
    })();
    expect(seen.length).toBe(1);
    expect(Code[(ended as ConnectError).code]).toBe(Code[Code.DeadlineExceeded]);
  });

  it("runs 30 watches and 30 waiting claims at once without a MaxListenersExceededWarning", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const op = await runWorkflow(await operationClients(server), [{ name: "only", kind: "many-watchers" }]);
      const token = await server.token("acme-editor");
      const watches = Array.from({ length: 30 }, () => watchWith(createClient(OperationService, transportWithServerDeadline("grpc", server.baseUrl, token, 60_000)), op.id));
      const c = await operationClients(server);
      const claims = Array.from({ length: 30 }, (_, i) => claim(c, `w${i}`, { kinds: ["nobody-enqueues-this"], waitMs: 1_500 }));
      await until(() => watches.every((w) => w.messages.length >= 1), 10_000, "every watch to start");
      await Promise.all(claims);
      for (const w of watches) w.cancel();
      await Promise.all(watches.map((w) => w.done));
      await new Promise((r) => setTimeout(r, 100));
      expect(warnings.map((w) => `${w.name}: ${w.message}`)).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });
});

describe.each(databaseKinds)("draining on %s", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: quiet });
  });
  afterAll(() => server?.close());

  it("ends open watches UNAVAILABLE, so clients resume elsewhere with after_sequence", async () => {
    const c = await operationClients(server);
    const op = await runWorkflow(c, [{ name: "only", kind: "drained" }]);
    const token = await server.token("acme-editor");
    const open = protocols.map((p) => watchWith(createClient(OperationService, transportWithServerDeadline(p, server.baseUrl, token, 60_000)), op.id));
    await until(() => open.every((w) => w.messages.length >= 1), 5_000, "the watches to start");
    server.app.drain();
    for (const w of open) {
      const err = await w.done;
      expect(err).toBeInstanceOf(ConnectError);
      expect(Code[(err as ConnectError).code]).toBe(Code[Code.Unavailable]);
    }
  });
});
