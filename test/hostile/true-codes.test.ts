import { randomUUID } from "node:crypto";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { ApiKeyService } from "../../gen/anvil/apikeys/v1/apikeys_pb.js";
import { AuditService } from "../../gen/anvil/audit/v1/audit_pb.js";
import { FindingService } from "../../gen/anvil/findings/v1/findings_pb.js";
import { OperationService } from "../../gen/anvil/operations/v1/operations_pb.js";
import { UserService } from "../../gen/anvil/users/v1/users_pb.js";
import { WorkflowService } from "../../gen/anvil/workflows/v1/workflows_pb.js";
import { translateDatabaseError } from "../../src/db/database-errors.js";
import { toConnectError } from "../../src/rpc/error-mapping.js";
import { clientFor } from "../support/clients.js";
import { databaseKinds } from "../support/databases.js";
import { expectCode } from "../support/expect-code.js";
import { operationClients, runWorkflow, watchWith } from "../support/operations.js";
import { startServer, type TestServer } from "../support/server.js";

/**
 * Every failure keeps its true code: numbers a column cannot hold are the
 * caller's mistake (INVALID_ARGUMENT), not a database error (INTERNAL).
 */
describe.each(databaseKinds)("true codes on %s", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind);
  });
  afterAll(() => server?.close());

  it.each(['"v2147483648"', '"v999999999999999"'])("an etag with a version out of range (%s) is INVALID_ARGUMENT and changes nothing", async (etag) => {
    const users = clientFor(UserService, "connect-json", server.baseUrl, await server.token());
    const user = (await users.createUser({ user: { email: `range-${etag.length}@example.com`, displayName: "r", roles: ["viewer"] } })).user!;
    const err = await expectCode(users.updateUser({ user: { id: user.id, displayName: "changed", etag }, updateMask: { paths: ["display_name"] } }), Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/etag/);
    await expectCode(users.deleteUser({ id: user.id, etag }), Code.InvalidArgument);
    const workflows = clientFor(WorkflowService, "connect-json", server.baseUrl, await server.token());
    await expectCode(workflows.deleteWorkflow({ id: user.id, etag }), Code.InvalidArgument);
    expect((await users.getUser({ id: user.id })).user!.displayName).toBe("r");
  });

  it.each([2n ** 31n, 2n ** 53n + 1n, 2n ** 63n - 1n])("a watch after sequence %s is INVALID_ARGUMENT", async (afterSequence) => {
    const c = await operationClients(server);
    const op = await runWorkflow(c, [{ name: "only", kind: "range" }]);
    const operations = clientFor(OperationService, "grpc", server.baseUrl, await server.token("acme-editor"));
    const err = await expectCode(operations.watchOperation({ id: op.id, afterSequence })[Symbol.asyncIterator]().next(), Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/after_sequence/);
  });

  it("an unexpected unique violation is ALREADY_EXISTS without the constraint's name", async () => {
    const row = { tenant_id: "acme", id: randomUUID(), email: `dup-${randomUUID()}@example.com`, display_name: "d", roles: [], state: "active" };
    const db = server.app.database.db;
    await db.insertInto("users").values(row).execute();
    const driverError = await db.insertInto("users").values(row).execute().then(() => undefined, (e: unknown) => e);
    const sent = toConnectError(translateDatabaseError(driverError), "req-1");
    expect(Code[sent.code]).toBe(Code[Code.AlreadyExists]);
    // What a Connect client receives: message and every detail (ErrorInfo metadata included).
    const visible = new TextDecoder().decode(errorToJsonBytes(sent, {}));
    expect(visible).toMatch(/already exists/);
    expect(visible).not.toMatch(/users_pkey|_key\b|pkey|constraint/i);
  });

  it("the largest and smallest Timestamps there are, as filters and as an expiry, are answered, not INTERNAL", async () => {
    // 9999-12-31T23:59:59.999999999Z: rounded up to the millisecond it was a Date in the year 10000.
    const max = { seconds: 253402300799n, nanos: 999_999_999 };
    const min = { seconds: -62135596800n, nanos: 0 };
    const token = await server.token();
    const audit = clientFor(AuditService, "connect-json", server.baseUrl, token);
    expect((await audit.listAuditEvents({ startTime: min, endTime: max })).events).toBeDefined();
    expect((await audit.listAuditEvents({ startTime: max })).events).toEqual([]);
    for await (const page of audit.exportAuditEvents({ startTime: min, endTime: max })) expect(page.events).toBeDefined();
    const findings = clientFor(FindingService, "connect-json", server.baseUrl, token);
    expect((await findings.listFindings({ since: min, until: max })).findings).toEqual([]);
    const keys = clientFor(ApiKeyService, "connect-json", server.baseUrl, token);
    const key = (await keys.createApiKey({ apiKey: { displayName: "far future", roles: ["viewer"], expireTime: max } })).apiKey!;
    expect(key.expireTime?.seconds).toBe(max.seconds);
  });

  it("a server stream whose request bytes do not parse ends INVALID_ARGUMENT, not INTERNAL", async () => {
    const garbage = Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    const envelope = new Uint8Array(5 + garbage.byteLength);
    new DataView(envelope.buffer).setUint32(1, garbage.byteLength);
    envelope.set(garbage, 5);
    const res = await fetch(`${server.baseUrl}/anvil.operations.v1.OperationService/WatchOperation`, {
      method: "POST",
      headers: { authorization: `Bearer ${await server.token()}`, "content-type": "application/connect+proto" },
      body: envelope,
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    // The end-stream message: flags 0x02, then its JSON.
    const endStream = JSON.parse(new TextDecoder().decode(bytes.subarray(5))) as { error?: { code: string } };
    expect(bytes[0]).toBe(0x02);
    expect(endStream.error?.code).toBe("invalid_argument");
  });

  // 9,999,999,999 ms is about 115 days, 99,999,999 hours over 11,000 years:
  // both beyond what a timer or statement_timeout accepts.
  it("a Connect unary call with a deadline beyond 24.8 days succeeds (clamped), on the fast path and over REST", async () => {
    const token = await server.token();
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json", "connect-timeout-ms": "9999999999" };
    const rpc = await fetch(`${server.baseUrl}/anvil.users.v1.UserService/ListUsers`, { method: "POST", headers, body: "{}" });
    expect(rpc.status, await rpc.clone().text()).toBe(200);
    const rest = await fetch(`${server.baseUrl}/v1/users`, { headers });
    expect(rest.status, await rest.clone().text()).toBe(200);
  });

  it("a gRPC unary call and a watch with a deadline of 99999999H are served, not ended at once", async () => {
    // The server shares this process: a timer armed beyond its limit shows as Node's warning.
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    onTestFinished(() => void process.off("warning", onWarning));
    const token = await server.token();
    const transport = createGrpcTransport({
      baseUrl: server.baseUrl,
      interceptors: [(next) => (req) => { req.header.set("authorization", `Bearer ${token}`); req.header.set("grpc-timeout", "99999999H"); return next(req); }],
    });
    const users = createClient(UserService, transport);
    await users.listUsers({});
    const c = await operationClients(server);
    const op = await runWorkflow(c, [{ name: "only", kind: "long-deadline" }]);
    const watch = watchWith(createClient(OperationService, transport), op.id);
    await new Promise((r) => setTimeout(r, 500));
    expect(watch.messages.length).toBeGreaterThanOrEqual(1);
    expect(await Promise.race([watch.done.then((e) => `ended: ${String(e)}`), Promise.resolve("open")])).toBe("open");
    watch.cancel();
    await watch.done;
    expect(warnings).not.toContain("TimeoutOverflowWarning");
  });
});

describe.each(databaseKinds.flatMap((kind) => [[kind, "fast path"], [kind, "universal handler"]] as const))("Connect JSON on %s, %s", (kind, path) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: { ANVIL_FAST_UNARY: path === "fast path" ? "true" : "false" } });
  });
  afterAll(() => server?.close());

  it("refuses a body that is not UTF-8 with INVALID_ARGUMENT, and stores nothing", async () => {
    const token = await server.token();
    const email = `utf8-${Date.now()}@example.com`;
    const body = Buffer.concat([Buffer.from(`{"user":{"email":"${email}","displayName":"a`), Buffer.from([0xff, 0xfe]), Buffer.from(`b","roles":["viewer"]}}`)]);
    const res = await fetch(`${server.baseUrl}/anvil.users.v1.UserService/CreateUser`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
    const users = clientFor(UserService, "connect-json", server.baseUrl, token);
    expect((await users.listUsers({ pageSize: 100 })).users.map((u) => u.email)).not.toContain(email);
  });
});
