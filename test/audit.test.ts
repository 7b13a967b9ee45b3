// The audit log (issue 13): an event for every change, written in the
// change's transaction; refusals recorded off the request path under the
// tenant their credential names; secrets absent; the admin-only
// AuditService reading it back. On both databases.
import { randomUUID } from "node:crypto";
import { create, type JsonObject, toJson } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService, CreateApiKeyResponseSchema } from "../gen/anvil/apikeys/v1/apikeys_pb.js";
import { type AuditEvent, AuditEvent_Kind, AuditEventSchema, AuditService } from "../gen/anvil/audit/v1/audit_pb.js";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { ClaimTaskResponseSchema, OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { loadConfig } from "../src/config.js";
import { holdsSecrets, redactedJson } from "../src/rpc/audit-redaction.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import { startServer, type TestServer } from "./support/server.js";
import { apiMethods, nameOf } from "./properties/support/api-methods.js";
import { callRpc } from "./properties/support/call.js";
import { methodRules } from "./properties/support/method-rules.js";
import { ownClients, type OwnClients } from "./properties/support/own-clients.js";

const mutating = apiMethods.filter((m) => m.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS);
const rpcName = (m: (typeof apiMethods)[number]) => `${m.parent.typeName}/${m.name}`;

/** Waits (generously: a loaded machine) until `read` returns something `done` accepts. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every stored column of every audit row, as text: what "the secret never appears" is checked on. */
async function storedText(server: TestServer): Promise<string> {
  const rows = await sql`select * from audit_events`.execute(server.app.database.db);
  return JSON.stringify(rows.rows);
}

describe.each(databaseKinds)("audit log (%s)", (kind) => {
  let server: TestServer;
  let own: OwnClients;
  let admin: ReturnType<typeof clientFor<typeof AuditService>>;
  let token: string;

  beforeAll(async () => {
    // Retention far beyond the events the retention test backdates: the sweeper leaves them to the test.
    server = await startServer(kind, { env: { ANVIL_AUDIT_FLUSH_MS: "20", ANVIL_AUDIT_RETENTION: "36500d" } });
    own = await ownClients(server);
    token = await server.token("acme-admin");
    admin = clientFor(AuditService, "connect-json", server.baseUrl, token);
  }, 60_000);
  afterAll(() => server?.close());

  const list = async (filter: Record<string, unknown>, client = admin) => (await client.listAuditEvents({ pageSize: 1000, ...filter })).events;

  it("classifies mutating methods from the protos, and finds some in every resource service", () => {
    const names = mutating.map(nameOf);
    for (const expected of ["UserService.CreateUser", "IpaService.DeployIpa", "WorkerService.CompleteTask", "ApiKeyService.RevokeApiKey", "OperationService.CancelOperation"]) {
      expect(names).toContain(expected);
    }
    expect(names).not.toContain("FindingService.CorrelateAlert");
    expect(names.filter((n) => n.startsWith("AuditService."))).toEqual([]);
  });

  it.each(mutating.map((m) => [nameOf(m), m] as const))("%s writes an audit event with its caller, call and parameters", async (_name, method) => {
    const rule = methodRules[method.name];
    expect(rule, `${nameOf(method)} has no rule`).toBeDefined();
    const seed = `a${randomUUID().slice(0, 8)}`;
    const request = await rule!.valid(own, seed);
    const before = new Date(Date.now() - 1);
    const answer = await callRpc("connect-json", server.baseUrl, token, method, request);
    expect(answer.code, answer.message).toBe("ok");
    const events = await list({ method: rpcName(method), startTime: timestampFromDate(before) });
    const mine = events.filter((e) => e.kind === AuditEvent_Kind.MUTATION);
    expect(mine.length, `${nameOf(method)} wrote no audit event`).toBeGreaterThanOrEqual(1);
    const event = mine[0]!;
    expect(event).toMatchObject({
      credentialKind: "service_account",
      credentialId: "acme-admin",
      protocol: "connect",
      outcome: 0,
      clientAddress: expect.stringMatching(/127\.0\.0\.1/),
    });
    expect(event.subject).not.toBe("");
    expect(event.requestId).not.toBe("");
    expect(event.userAgent).not.toBe("");
    expect(event.parameters, "a change carries its parameters").toBeDefined();
    // The ids the request names are among the resources touched.
    for (const [k, v] of Object.entries(request)) if ((k === "id" || k === "taskId") && typeof v === "string") expect(event.resourceIds).toContain(v);
  });

  it("records the trace id, the REST protocol and a created resource's id", async () => {
    const res = await fetch(`${server.baseUrl}/v1/users`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "user-agent": "audit-test/1.0",
        "x-request-id": "audit-trace-1",
      },
      body: JSON.stringify({ email: "traced@example.com", displayName: "Traced", roles: ["viewer"] }),
    });
    expect(res.status).toBe(200);
    const created = (await res.json()) as { id: string };
    const [event] = await list({ resourceId: created.id, method: "anvil.users.v1.UserService/CreateUser" });
    expect(event).toMatchObject({ protocol: "rest", traceId: "4bf92f3577b34da6a3ce929d0e0e4736", userAgent: "audit-test/1.0", requestId: "audit-trace-1" });
    expect(event!.parameters).toMatchObject({ user: { email: "traced@example.com" } });
  });

  it("records a change whose ignored fields hold NUL (PostgreSQL stores none), with U+FFFD in its place, instead of failing it", async () => {
    // id is output-only: the create ignores it, the event records the request as sent.
    const res = await fetch(`${server.baseUrl}/v1/users`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ id: "a\u0000b", email: "nul-id@example.com", displayName: "Nul" }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    const created = (await res.json()) as { id: string };
    const [event] = await list({ resourceId: created.id, method: "anvil.users.v1.UserService/CreateUser" });
    expect(event!.parameters).toMatchObject({ user: { id: "a\uFFFDb", email: "nul-id@example.com" } });
  });

  it("keeps secrets out: an API key's secret and lease tokens are never stored", async () => {
    const keys = clientFor(ApiKeyService, "grpc", server.baseUrl, token);
    const created = await keys.createApiKey({ apiKey: { displayName: "audited", roles: ["viewer"] } });
    expect(created.secret).toMatch(/^anvil_/);
    const task = await own.leased(`s${randomUUID().slice(0, 8)}`);
    await own.call("ReportProgress", { taskId: task.id, leaseToken: task.leaseToken, progress: 0.5 });
    await own.call("CompleteTask", { taskId: task.id, leaseToken: task.leaseToken, result: { ok: true } });
    const text = await storedText(server);
    expect(text).not.toContain(created.secret);
    expect(text).not.toContain(task.leaseToken);
    const [report] = await list({ method: "anvil.operations.v1.WorkerService/ReportProgress", resourceId: task.id });
    expect(report!.parameters).toMatchObject({ taskId: task.id, progress: 0.5 });
    expect(report!.parameters).not.toHaveProperty("leaseToken");
  });

  it("records UNAUTHENTICATED under the tenant a refused credential names: a revoked API key, an expired service-account key", async () => {
    const keys = clientFor(ApiKeyService, "connect-json", server.baseUrl, token);
    const created = await keys.createApiKey({ apiKey: { displayName: "soon revoked", roles: ["admin"] } });
    const keyId = created.apiKey!.id;
    await keys.revokeApiKey({ id: keyId });
    // Over every path a refusal can take: the fast unary path, REST, and a stream (connect's universal handler).
    await expectCode(clientFor(UserService, "grpc", server.baseUrl, { "x-api-key": created.secret }).listUsers({}), Code.Unauthenticated);
    const rest = await fetch(`${server.baseUrl}/v1/users`, { headers: { authorization: `Bearer ${created.secret}` } });
    expect(rest.status).toBe(401);
    const watch = clientFor(OperationService, "connect-json", server.baseUrl, created.secret).watchOperation({ id: randomUUID() });
    await expectCode((async () => { for await (const _ of watch) break; })(), Code.Unauthenticated);
    const events = await eventually(
      () => list({ credential: `api_key:${keyId}`, outcome: Code.Unauthenticated }),
      (e) => e.length >= 3,
      "three refusals of the revoked key",
    );
    expect(new Set(events.map((e) => e.protocol))).toEqual(new Set(["grpc", "rest", "connect"]));
    for (const e of events) {
      expect(e).toMatchObject({ kind: AuditEvent_Kind.REFUSAL, credentialKind: "api_key", credentialId: keyId, subject: "" });
      expect(e.parameters, "a refusal carries no parameters").toBeUndefined();
    }
    expect(events.map((e) => e.method)).toEqual(
      expect.arrayContaining(["anvil.users.v1.UserService/ListUsers", "anvil.operations.v1.OperationService/WatchOperation"]),
    );

    const expired = await server.token("acme-expired");
    await expectCode(clientFor(UserService, "grpc-web", server.baseUrl, expired).listUsers({}), Code.Unauthenticated);
    await eventually(() => list({ credential: "service_account:acme-expired" }), (e) => e.length === 1 && e[0]!.outcome === (Code.Unauthenticated as number), "the expired key's refusal");
  });

  it("records PERMISSION_DENIED with the caller, and refusals naming no tenant go to no tenant's log", async () => {
    const viewer = await server.token("acme-viewer");
    await expectCode(clientFor(UserService, "connect-binary", server.baseUrl, viewer).createUser({ user: { email: "x@example.com", displayName: "x", roles: ["viewer"] } }), Code.PermissionDenied);
    // The audit log itself is admin only.
    await expectCode(clientFor(AuditService, "grpc", server.baseUrl, viewer).listAuditEvents({}), Code.PermissionDenied);
    await expectCode(clientFor(AuditService, "grpc", server.baseUrl, await server.token("acme-editor")).listAuditEvents({}), Code.PermissionDenied);
    const denied = await eventually(() => list({ credential: "service_account:acme-viewer", outcome: Code.PermissionDenied }), (e) => e.length === 2, "the viewer's refusals");
    expect(denied.map((e) => e.method).sort()).toEqual(["anvil.audit.v1.AuditService/ListAuditEvents", "anvil.users.v1.UserService/CreateUser"]);
    expect(denied[0]).toMatchObject({ kind: AuditEvent_Kind.REFUSAL, subject: expect.any(String) });
    expect(denied[0]!.subject).not.toBe("");

    const platformBefore = await platformRefusals(server);
    const total = async () => Number((await sql<{ n: string }>`select count(*) as n from audit_events`.execute(server.app.database.db)).rows[0]!.n);
    const rowsBefore = await total();
    await expectCode(clientFor(UserService, "grpc", server.baseUrl, "not-a-token").listUsers({}), Code.Unauthenticated);
    await expectCode(clientFor(UserService, "grpc", server.baseUrl, `anvil_${"0".repeat(32)}_${"A".repeat(43)}`).listUsers({}), Code.Unauthenticated);
    await eventually(() => platformRefusals(server), (n) => n >= platformBefore + 2, "platform refusals counted");
    expect(await total()).toBe(rowsBefore);
  });

  it("keeps a change from committing when its audit event cannot be written", async () => {
    const users = clientFor(UserService, "connect-json", server.baseUrl, token);
    const user = (await users.createUser({ user: { email: "kept@example.com", displayName: "Kept", roles: ["viewer"] } })).user!;
    // A real database condition, in this test's own database: audit rows of deletes are refused.
    await sql`alter table audit_events add constraint no_deletes_audited check (method <> 'anvil.users.v1.UserService/DeleteUser') not valid`.execute(server.app.database.db);
    try {
      const err = await users.deleteUser({ id: user.id }).then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(err, "the delete must fail").toBeDefined();
      expect(err!.message).not.toMatch(/audit_events|constraint|check/i);
      // Nothing changed: the user is still there, at the same version.
      expect((await users.getUser({ id: user.id })).user).toEqual(user);
    } finally {
      await sql`alter table audit_events drop constraint no_deletes_audited`.execute(server.app.database.db);
    }
    await users.deleteUser({ id: user.id });
    await expectCode(users.getUser({ id: user.id }), Code.NotFound);
  });

  it("lists newest first with keyset pages and every filter, within the caller's tenant only", async () => {
    const users = clientFor(UserService, "connect-json", server.baseUrl, token);
    const start = new Date(Date.now() - 1);
    const made: Array<{ id: string }> = [];
    for (let i = 0; i < 7; i++) made.push((await users.createUser({ user: { email: `page${i}@example.com`, displayName: `P${i}`, roles: ["viewer"] } })).user!);
    const filter = { method: "anvil.users.v1.UserService/CreateUser", startTime: timestampFromDate(start) };
    const seen: AuditEvent[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await admin.listAuditEvents({ ...filter, pageSize: 3, pageToken });
      seen.push(...page.events);
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "");
    expect(pages).toBe(3);
    expect(seen.map((e) => e.resourceIds.find((id) => made.some((u) => u.id === id)))).toEqual(made.map((u) => u.id).reverse());
    const times = seen.map((e) => Number(e.time!.seconds) * 1e3 + e.time!.nanos / 1e6);
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    // Each filter narrows.
    expect(await list({ resourceId: made[3]!.id })).toHaveLength(1);
    expect((await list({ ...filter, subject: seen[0]!.subject })).length).toBe(7);
    expect(await list({ ...filter, credential: "service_account:acme-viewer" })).toHaveLength(0);
    expect(await list({ ...filter, outcome: Code.PermissionDenied })).toHaveLength(0);
    expect(await list({ method: filter.method, startTime: timestampFromDate(new Date("2020-01-01")), endTime: timestampFromDate(new Date("2021-01-01")) })).toHaveLength(0);
    // A page token is bound to its filters and its tenant.
    const first = await admin.listAuditEvents({ ...filter, pageSize: 3 });
    await expectCode(admin.listAuditEvents({ method: "anvil.users.v1.UserService/DeleteUser", pageSize: 3, pageToken: first.nextPageToken }), Code.InvalidArgument);
    const globex = clientFor(AuditService, "connect-json", server.baseUrl, await server.token("globex-admin"));
    await expectCode(globex.listAuditEvents({ ...filter, pageSize: 3, pageToken: first.nextPageToken }), Code.InvalidArgument);
    // The other tenant sees none of it.
    const theirs = (await globex.listAuditEvents({ pageSize: 1000 })).events;
    expect(theirs.filter((e) => e.credentialId.startsWith("acme") || e.resourceIds.some((id) => made.some((u) => u.id === id)))).toEqual([]);
    await expectCode(admin.listAuditEvents({ credential: "nocolon" }), Code.InvalidArgument);
    await expectCode(admin.listAuditEvents({ startTime: timestampFromDate(new Date()), endTime: timestampFromDate(start) }), Code.InvalidArgument);
  });

  it("exports a range over RPC (a stream of batches) and over REST (JSON Lines), the same events oldest first", async () => {
    const start = new Date(Date.now() - 1);
    for (let i = 0; i < 3; i++) await own.user(`x${randomUUID().slice(0, 8)}`);
    const end = new Date(Date.now() + 1);
    const rpc: AuditEvent[] = [];
    for await (const batch of admin.exportAuditEvents({ startTime: timestampFromDate(start), endTime: timestampFromDate(end) })) rpc.push(...batch.events);
    expect(rpc.filter((e) => e.method === "anvil.users.v1.UserService/CreateUser")).toHaveLength(3);
    const res = await fetch(`${server.baseUrl}/v1/audit/events:export?startTime=${start.toISOString()}&endTime=${end.toISOString()}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    const lines = (await res.text()).split("\n");
    expect(lines.pop()).toBe("");
    expect(lines.map((l) => JSON.parse(l) as JsonObject)).toEqual(rpc.map((e) => toJson(AuditEventSchema, e)));
    // Refused over REST as any call is: the permission before anything is read.
    const refused = await fetch(`${server.baseUrl}/v1/audit/events:export`, { headers: { authorization: `Bearer ${await server.token("acme-viewer")}` } });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { code: string }).code).toBe("permission_denied");
  });

  it("retention deletes only events older than the cutoff, in batches", async () => {
    const old = new Date("2020-01-01T00:00:00Z");
    const event = { kind: "refusal" as const, credentialKind: "", credentialId: "", subject: "", method: "m/M", protocol: "grpc", requestId: "", traceId: "", resourceIds: [], outcome: 16, clientAddress: "", userAgent: "", parameters: null, droppedCount: 0 };
    await server.app.auditStore.insertMany([1, 2, 3, 4, 5].map((i) => ({ tenant: i % 2 ? "acme" : "globex", event: { ...event, tenant: "", time: new Date(old.getTime() + i) } })));
    const cutoff = new Date("2021-01-01T00:00:00Z");
    // Other events may still arrive meanwhile (queued refusals): count by age.
    const count = async (older: boolean) =>
      Number((await sql<{ n: string }>`select count(*) as n from audit_events where (time < ${cutoff}) = ${older}`.execute(server.app.database.db)).rows[0]!.n);
    expect(await count(true)).toBe(5);
    const newer = await count(false);
    expect(await server.app.auditStore.deleteOlderThan(cutoff, 2)).toBe(2);
    expect(await server.app.auditStore.deleteOlderThan(cutoff, 2)).toBe(2);
    expect(await server.app.auditStore.deleteOlderThan(cutoff, 2)).toBe(1);
    expect(await server.app.auditStore.deleteOlderThan(cutoff, 2)).toBe(0);
    expect(await count(true)).toBe(0);
    expect(await count(false)).toBeGreaterThanOrEqual(newer);
  });
});

describe.each(databaseKinds)("audit refusal queue (%s)", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    // A small queue written rarely: a burst overflows it.
    server = await startServer(kind, { env: { ANVIL_AUDIT_QUEUE_CAPACITY: "5", ANVIL_AUDIT_FLUSH_MS: "3000" } });
  }, 60_000);
  afterAll(() => server?.close());

  it("drops what overflows, counts it, and records the count as an event of the tenant", async () => {
    const viewer = clientFor(UserService, "grpc", server.baseUrl, await server.token("acme-viewer"));
    const refused = Array.from({ length: 20 }, (_, i) => viewer.createUser({ user: { email: `f${i}@example.com`, displayName: "f", roles: ["viewer"] } }));
    const settled = await Promise.allSettled(refused);
    expect(settled.map((r) => (r.status === "rejected" ? ConnectError.from(r.reason).code : "ok"))).toEqual(refused.map(() => Code.PermissionDenied));
    const admin = clientFor(AuditService, "connect-json", server.baseUrl, await server.token("acme-admin"));
    const events = await eventually(
      async () => (await admin.listAuditEvents({ credential: "service_account:acme-viewer", pageSize: 100 })).events,
      (e) => e.length >= 6,
      "the queued refusals and the dropped count",
    );
    const dropped = events.filter((e) => e.kind === AuditEvent_Kind.DROPPED);
    expect(events.filter((e) => e.kind === AuditEvent_Kind.REFUSAL)).toHaveLength(5);
    expect(dropped).toHaveLength(1);
    expect(dropped[0]!.droppedCount).toBe(15n);
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/anvil_audit_dropped_events_total\{reason="overflow"\} 15/);
    expect(metrics).toMatch(/anvil_audit_queue_events \d+/);
  });
});

describe("audit redaction", () => {
  it("removes every debug_redact field, at any depth, reading the descriptors", () => {
    const task = { id: randomUUID(), kind: "demo", leaseToken: "secret-lease" };
    const res = create(ClaimTaskResponseSchema, { task, tasks: [task, { ...task, leaseToken: "secret-2" }] });
    const json = redactedJson(ClaimTaskResponseSchema, res);
    expect(JSON.stringify(json)).not.toMatch(/secret|leaseToken/);
    expect(json).toMatchObject({ task: { id: task.id, kind: "demo" }, tasks: [{ id: task.id }, { id: task.id }] });
    // The message itself is left as it was.
    expect(res.tasks[1]!.leaseToken).toBe("secret-2");
    expect(holdsSecrets(ClaimTaskResponseSchema)).toBe(true);
    expect(holdsSecrets(AuditEventSchema)).toBe(false);
    expect(redactedJson(CreateApiKeyResponseSchema, create(CreateApiKeyResponseSchema, { secret: "anvil_x", apiKey: { id: "k" } }))).toEqual({ apiKey: { id: "k" } });
  });
});

describe.each(databaseKinds)("audit log off (%s)", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: { ANVIL_AUDIT: "off", ANVIL_AUDIT_FLUSH_MS: "20" } });
  }, 60_000);
  afterAll(() => server?.close());

  it("with ANVIL_AUDIT=off serves changes and refusals alike and records neither", async () => {
    const users = clientFor(UserService, "connect-json", server.baseUrl, await server.token("acme-admin"));
    const created = await users.createUser({ user: { email: "off@example.com", displayName: "off", roles: ["viewer"] } });
    expect(created.user?.id).toBeTruthy();
    await expectCode(clientFor(UserService, "grpc", server.baseUrl, await server.token("acme-viewer")).createUser({ user: { email: "x@example.com", displayName: "x", roles: ["viewer"] } }), Code.PermissionDenied);
    await expectCode(clientFor(UserService, "grpc", server.baseUrl, "not-a-token").listUsers({}), Code.Unauthenticated);
    // Longer than the refusal queue's flush interval, several times over.
    await new Promise((r) => setTimeout(r, 300));
    const rows = await sql<{ n: string }>`select count(*) as n from audit_events`.execute(server.app.database.db);
    expect(Number(rows.rows[0]!.n)).toBe(0);
  });
});

describe("audit configuration", () => {
  it("reads ANVIL_AUDIT_RETENTION as a duration like the other retentions, 90 days by default, and refuses nonsense", () => {
    expect(loadConfig({}).auditRetentionMs).toBe(90 * 86_400_000);
    expect(loadConfig({ ANVIL_AUDIT_RETENTION: "30d" }).auditRetentionMs).toBe(30 * 86_400_000);
    expect(loadConfig({ ANVIL_AUDIT_RETENTION: "12h" }).auditRetentionMs).toBe(12 * 3_600_000);
    // A bare number has no unit to trust; zero would delete every event at once.
    expect(() => loadConfig({ ANVIL_AUDIT_RETENTION: "7" })).toThrow(/ANVIL_AUDIT_RETENTION/);
    expect(() => loadConfig({ ANVIL_AUDIT_RETENTION: "0" })).toThrow(/ANVIL_AUDIT_RETENTION/);
    expect(() => loadConfig({ ANVIL_AUDIT_RETENTION: "ninety" })).toThrow(/ANVIL_AUDIT_RETENTION/);
  });

  it("reads ANVIL_AUDIT as on or off, on by default", () => {
    expect(loadConfig({}).audit).toBe(true);
    expect(loadConfig({ ANVIL_AUDIT: "off" }).audit).toBe(false);
    expect(() => loadConfig({ ANVIL_AUDIT: "maybe" })).toThrow(/ANVIL_AUDIT/);
  });
});

async function platformRefusals(server: TestServer): Promise<number> {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
  return Number(/^anvil_audit_platform_refusals_total (\d+)/m.exec(text)?.[1] ?? "0");
}


