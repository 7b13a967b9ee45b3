import { randomBytes } from "node:crypto";
import net from "node:net";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../gen/anvil/apikeys/v1/apikeys_pb.js";
import { OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { Workflow_State, WorkflowService } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { startTracing, type TracingHandle } from "../src/tracing/tracing.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import { until } from "./support/operations.js";
import { type OtlpReceiver, startOtlpReceiver } from "./support/otlp-receiver.js";
import { captureLog } from "./support/log-capture.js";
import { startServer, type TestServer } from "./support/server.js";

interface Line {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

// This file's process traces (its gateways run in it), so that the log lines carry trace ids.
let receiver: OtlpReceiver;
let tracing: TracingHandle | undefined;
beforeAll(async () => {
  receiver = await startOtlpReceiver();
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint;
  process.env.OTEL_BSP_SCHEDULE_DELAY = "100";
  tracing = await startTracing("anvil-access-log-test");
  expect(tracing).toBeDefined();
});
afterAll(async () => {
  await tracing?.shutdown();
  await receiver?.close();
});

describe.each(databaseKinds)("the access log on %s", (kind) => {
  let server: TestServer;
  const { log, lines: output } = captureLog("info");
  const lines = () => output.flatMap((chunk) => chunk.split("\n").filter(Boolean)).map((l) => JSON.parse(l) as Line);
  const callLines = () => lines().filter((l) => l.msg === "rpc");

  beforeAll(async () => {
    server = await startServer(kind, { log });
    // A loaded shared machine can take most of a minute to start a gateway on the embedded database.
  }, 180_000);
  afterAll(() => server?.close());

  it("writes one line per call: request id, trace and span ids, credential, method, protocol, code, duration", async () => {
    const traceId = randomBytes(16).toString("hex");
    const requestId = `req-${randomBytes(4).toString("hex")}`;
    const users = clientFor(UserService, "connect-json", server.baseUrl, {
      authorization: `Bearer ${await server.token("acme-admin")}`,
      "x-request-id": requestId,
      traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01`,
    });
    const before = callLines().length;
    await users.listUsers({});
    await until(() => callLines().length > before, 5_000, "the line");
    const mine = callLines().filter((l) => l.request_id === requestId);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      level: 30,
      rpc: "anvil.users.v1.UserService/ListUsers",
      protocol: "connect",
      code: "ok",
      trace_id: traceId,
      tenant: "acme",
      credential: expect.stringContaining("acme-admin"),
    });
    expect(mine[0]!.span_id).toMatch(/^[0-9a-f]{16}$/);
    expect(mine[0]!.ms).toBeGreaterThan(0);

    // Over gRPC (the fast path), and refused before the interceptors: still one line, with its code.
    const grpc = clientFor(UserService, "grpc", server.baseUrl, { "x-request-id": `${requestId}-g` });
    await expectCode(grpc.listUsers({}), Code.Unauthenticated);
    await until(() => callLines().some((l) => l.request_id === `${requestId}-g`), 5_000, "the gRPC line");
    expect(callLines().filter((l) => l.request_id === `${requestId}-g`)).toEqual([
      expect.objectContaining({ protocol: "grpc", code: "Unauthenticated", rpc: "anvil.users.v1.UserService/ListUsers" }),
    ]);
  });

  it("times a stream to its end", async () => {
    const editor = await server.token("acme-editor");
    const workflows = clientFor(WorkflowService, "connect-json", server.baseUrl, editor);
    const workflow = (await workflows.createWorkflow({ workflow: { displayName: "w", state: Workflow_State.ACTIVE, steps: [{ name: "s", kind: "demo", config: {} }] } })).workflow!;
    const op = (await workflows.runWorkflow({ id: workflow.id })).operation!;
    const requestId = `watch-${randomBytes(4).toString("hex")}`;
    const operations = clientFor(OperationService, "connect-json", server.baseUrl, { authorization: `Bearer ${editor}`, "x-request-id": requestId });
    const opened = Date.now();
    const watching = (async () => {
      for await (const _ of operations.watchOperation({ id: op.id })) void _;
    })();
    // Nobody works on it: the stream stays open until the operation is cancelled.
    await new Promise((r) => setTimeout(r, 600));
    await clientFor(OperationService, "connect-json", server.baseUrl, editor).cancelOperation({ id: op.id });
    await watching;
    const elapsed = Date.now() - opened;
    await until(() => callLines().some((l) => l.request_id === requestId), 5_000, "the stream's line");
    const line = callLines().find((l) => l.request_id === requestId)!;
    expect(line).toMatchObject({ rpc: "anvil.operations.v1.OperationService/WatchOperation", code: "ok" });
    expect(line.ms as number).toBeGreaterThanOrEqual(550);
    expect(line.ms as number).toBeLessThanOrEqual(elapsed + 50);
  });

  it("never writes a credential or a request's values: header, API key, query and body", async () => {
    const admin = await server.token("acme-admin");
    const { secret: apiKey } = await clientFor(ApiKeyService, "connect-json", server.baseUrl, admin).createApiKey({
      apiKey: { displayName: "log-test", roles: ["admin"], tier: "" },
    });
    const bodySecret = `b0dy-${randomBytes(8).toString("hex")}`;
    const querySecret = `qu3ry-${randomBytes(8).toString("hex")}`;
    const badToken = `eyJbad.${randomBytes(12).toString("hex")}.sig`;
    // The bearer token, as header; the API key as either header; a token in the query; secrets in bodies.
    await clientFor(UserService, "connect-json", server.baseUrl, admin).listUsers({});
    await clientFor(UserService, "grpc", server.baseUrl, { "x-api-key": apiKey }).listUsers({});
    await clientFor(UserService, "connect-binary", server.baseUrl, { authorization: `Bearer ${apiKey}` }).listUsers({});
    await expectCode(clientFor(UserService, "grpc-web", server.baseUrl, badToken).listUsers({}), Code.Unauthenticated);
    const rest = await fetch(`${server.baseUrl}/v1/users?access_token=${querySecret}&page_size=1`, { headers: { authorization: `Bearer ${admin}` } });
    expect(rest.status).toBe(400);
    const created = await fetch(`${server.baseUrl}/v1/users`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ email: `${bodySecret}@example.com`, displayName: bodySecret, roles: ["viewer"] }),
    });
    expect(created.status).toBe(200);
    const invalid = await fetch(`${server.baseUrl}/v1/users`, {
      method: "POST",
      headers: { "x-api-key": apiKey, "content-type": "application/json" },
      body: JSON.stringify({ email: bodySecret, displayName: bodySecret, roles: [] }),
    });
    expect(invalid.status).toBe(400);
    await until(() => callLines().filter((l) => l.protocol === "rest").length >= 3, 5_000, "the REST lines");
    const text = output.join("");
    for (const secret of [admin, apiKey, apiKey.split("_").at(-1)!, badToken, bodySecret, querySecret]) expect(text).not.toContain(secret);
    expect(text.toLowerCase()).not.toContain("bearer");
    // …while the lines are there, naming the API key by its id only.
    expect(callLines().some((l) => typeof l.credential === "string" && l.credential.includes(apiKey.split("_")[1]!.slice(0, 8)))).toBe(true);
  });

  it("logs a connection that ends in an error instead of swallowing it", async () => {
    const socket = net.connect(server.port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    // Read what the server answers (a 400), or the socket never sees its end.
    socket.resume();
    socket.write("NOT AN HTTP REQUEST\r\n\r\n");
    await new Promise((resolve) => socket.once("close", resolve));
    await until(() => lines().some((l) => l.msg === "connection ended by an error"), 5_000, "the connection's line");
    const line = lines().find((l) => l.msg === "connection ended by an error")!;
    expect(line).toMatchObject({ level: 30, err: { code: expect.stringMatching(/^HPE_/) }, peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
  });
});
