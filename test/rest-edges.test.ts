// REST edges the first mutation run of src/server/rest/ left (rest-handler.ts
// and rest-stream.ts), over a real gateway: server streams served as JSON
// Lines item by item (ExportAuditEvents, StreamTasks), an error before the
// first line, a large line waiting for the socket to drain, a client that
// leaves, the deadline header, and what a refused caller's request is not
// read for. The common paths are in rest.test.ts and the REST equivalence property.
import { randomUUID } from "node:crypto";
import { toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AuditEvent, AuditEventSchema, AuditService } from "../gen/anvil/audit/v1/audit_pb.js";
import type { NewAuditEvent } from "../src/audit/audit-event.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { claimWaits, operationClients, runWorkflow, until, untilClaimsWait } from "./support/operations.js";
import { tieredKey } from "./support/rate-limits.js";
import { startServer, type TestServer } from "./support/server.js";

/** A refusal event of `tenant` at `time`, as the audit queue would store it, with `parameters`. */
function storedEvent(time: Date, parameters: NewAuditEvent["parameters"] = null): NewAuditEvent {
  return {
    kind: "refusal",
    tenant: "",
    time,
    credentialKind: "service_account",
    credentialId: "acme-admin",
    subject: "",
    method: "anvil.users.v1.UserService/GetUser",
    protocol: "rest",
    requestId: randomUUID(),
    traceId: "",
    resourceIds: [],
    outcome: 5,
    clientAddress: "127.0.0.1",
    userAgent: "",
    parameters,
    droppedCount: 0,
  };
}

/** The gateway's body limit here: well above every request but the ones made too large. */
const maxRequestBytes = 16_384;

describe.each(databaseKinds)("REST edges on %s", (kind) => {
  let server: TestServer;
  let admin: string;
  beforeAll(async () => {
    // Keep-alive messages (no task) every 10 ms: a short StreamTasks call sends several.
    server = await startServer(kind, { env: { ANVIL_WATCH_KEEPALIVE_MS: "10", ANVIL_MAX_REQUEST_BYTES: String(maxRequestBytes) } });
    admin = await server.token("acme-admin");
  });
  afterAll(() => server?.close());

  const exportPath = (start: Date, end: Date) => `/v1/audit/events:export?startTime=${start.toISOString()}&endTime=${end.toISOString()}`;

  it("serves a server stream as JSON Lines: every item of every message, one per line, each ended by a newline, with the request id", async () => {
    // A range of its own, ahead of every other event (and of retention, which sweeps old ones): 250 events are
    // two export batches (200 + 50), and one event's line is larger than the socket's write buffer, so it waits for a drain.
    const start = new Date(Date.now() + 86_400_000 + Math.floor(Math.random() * 1e9));
    const events = Array.from({ length: 250 }, (_, i) => storedEvent(new Date(start.getTime() + i), i === 7 ? { note: "x".repeat(100_000) } : null));
    await server.app.auditStore.insertMany(events.map((event) => ({ tenant: "acme", event })));
    const end = new Date(start.getTime() + 250);
    const rpc: AuditEvent[] = [];
    const client = clientFor(AuditService, "connect-json", server.baseUrl, admin);
    for await (const batch of client.exportAuditEvents({ startTime: timestampFromDate(start), endTime: timestampFromDate(end) })) rpc.push(...batch.events);
    expect(rpc.map((e) => e.requestId)).toEqual(events.map((e) => e.requestId));

    const res = await fetch(`${server.baseUrl}${exportPath(start, end)}`, { headers: { authorization: `Bearer ${admin}`, "x-request-id": "json-lines-1" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    expect(res.headers.get("x-request-id")).toBe("json-lines-1");
    expect(await res.text()).toBe(rpc.map((e) => `${JSON.stringify(toJson(AuditEventSchema, e))}\n`).join(""));
  });

  it("writes no line for a message without items (StreamTasks' keep-alives)", async () => {
    const res = await fetch(`${server.baseUrl}/v1/tasks:stream`, {
      method: "POST",
      headers: { authorization: `Bearer ${await server.token("acme-worker")}`, "content-type": "application/json" },
      body: JSON.stringify({ kinds: [`idle-${randomUUID()}`], workerId: "rest-idle", maxDuration: "0.3s" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    expect(await res.text()).toBe("");
  });

  it("answers an error before the first line as a REST error, with its status and the request id; the refusal is audited with the caller's user agent", async () => {
    const viewer = await server.token("acme-viewer");
    const now = new Date();
    const hour = new Date(now.getTime() - 3_600_000);
    const requestId = `json-lines-${randomUUID()}`;
    const refused = await fetch(`${server.baseUrl}${exportPath(hour, now)}`, { headers: { authorization: `Bearer ${viewer}`, "x-request-id": requestId, "user-agent": "rest-edges/1" } });
    expect([refused.status, refused.headers.get("content-type"), refused.headers.get("x-request-id")]).toEqual([403, "application/json", requestId]);
    expect(await refused.json()).toMatchObject({ code: "permission_denied" });
    // The RPC's own interceptors refused it, from the headers REST passed on.
    const audit = clientFor(AuditService, "connect-json", server.baseUrl, admin);
    let recorded: AuditEvent | undefined;
    await until(async () => {
      recorded = (await audit.listAuditEvents({ method: "anvil.audit.v1.AuditService/ExportAuditEvents", pageSize: 100 })).events.find((e) => e.requestId === requestId);
      return recorded !== undefined;
    }, 10_000, "the refusal's audit event");
    expect(recorded).toMatchObject({ userAgent: "rest-edges/1", protocol: "rest", credentialId: "acme-viewer" });
    // Decided by the method itself (end before start), after the interceptors let it through.
    const backwards = await fetch(`${server.baseUrl}${exportPath(now, hour)}`, { headers: { authorization: `Bearer ${admin}`, "x-request-id": "json-lines-3" } });
    expect([backwards.status, backwards.headers.get("x-request-id")]).toEqual([400, "json-lines-3"]);
    expect(await backwards.json()).toMatchObject({ code: "invalid_argument" });
  });

  it("passes Connect-Timeout-Ms on to a stream and a unary call: one that is not a number is refused", async () => {
    const now = new Date();
    const headers = { authorization: `Bearer ${admin}`, "connect-timeout-ms": "soon" };
    const streamed = await fetch(`${server.baseUrl}${exportPath(new Date(now.getTime() - 3_600_000), now)}`, { headers });
    expect(streamed.status).toBe(400);
    expect(await streamed.json()).toMatchObject({ code: "invalid_argument" });
    const unary = await fetch(`${server.baseUrl}/v1/users`, { headers });
    expect(unary.status).toBe(400);
    expect(await unary.json()).toMatchObject({ code: "invalid_argument" });
  });

  it("does not read a refused caller's query, on a stream as on a unary route: the credential is refused first", async () => {
    const stream = await fetch(`${server.baseUrl}/v1/audit/events:export?colour=blue`);
    expect(stream.status).toBe(401);
    expect(await stream.json()).toMatchObject({ code: "unauthenticated" });
    const unary = await fetch(`${server.baseUrl}/v1/users?colour=blue`);
    expect(unary.status).toBe(401);
    expect(await unary.json()).toMatchObject({ code: "unauthenticated" });
  });

  it("refuses a body over the limit before the call, with the limit's RateLimit fields, and audits the refusal as REST's, with its caller", async () => {
    const key = await tieredKey(server, "enterprise", ["admin"]);
    const calls = [
      ["/v1/users", `too-large-${randomUUID()}`],
      ["/v1/tasks:stream", `too-large-${randomUUID()}`],
    ] as const;
    const body = JSON.stringify({ displayName: "x".repeat(maxRequestBytes) });
    for (const [path, requestId] of calls) {
      const res = await fetch(`${server.baseUrl}${path}`, { method: "POST", headers: { "x-api-key": key.secret, "x-request-id": requestId, "content-type": "application/json" }, body });
      expect(res.status, path).toBe(413);
      expect(await res.json(), path).toMatchObject({ code: "resource_exhausted", details: [] });
      if (path === "/v1/users") expect(res.headers.get("ratelimit-policy")).toMatch(/^"enterprise";q=\d+;w=\d+$/);
    }
    const audit = clientFor(AuditService, "connect-json", server.baseUrl, admin);
    const requestIds: string[] = calls.map(([, id]) => id);
    let recorded: AuditEvent[] = [];
    await until(async () => {
      recorded = (await audit.listAuditEvents({ credential: `api_key:${key.id}`, pageSize: 100 })).events.filter((e) => requestIds.includes(e.requestId));
      return recorded.length === 2;
    }, 10_000, "both refusals' audit events");
    // Refused after authentication: the event names the caller itself, not only the credential its headers claim.
    const caller = (await (await fetch(`${server.baseUrl}/v1/caller`, { headers: { "x-api-key": key.secret } })).json()) as { subject: string };
    expect(caller.subject).not.toBe("");
    for (const e of recorded) expect(e).toMatchObject({ protocol: "rest", credentialKind: "api_key", credentialId: key.id, subject: caller.subject, outcome: Code.ResourceExhausted });
  });

  it("marks only GET answers private: a POST's answer has no Cache-Control", async () => {
    const res = await fetch(`${server.baseUrl}/v1/users`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ email: `post-${randomUUID().slice(0, 8)}@example.com`, displayName: "Post" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBeNull();
  });

  it("ends a unary call and a stream whose client left: their waiting claims are released at once", async () => {
    const worker = { authorization: `Bearer ${await server.token("acme-worker")}`, "content-type": "application/json" };
    const kindName = `left-${randomUUID()}`;
    const before = await claimWaits(server);
    // A claim that would wait a minute for work that never comes.
    const claim = new AbortController();
    const claiming = fetch(`${server.baseUrl}/v1/tasks:claim`, { method: "POST", headers: worker, body: JSON.stringify({ kinds: [kindName], workerId: "rest-leaver", maxWait: "60s" }), signal: claim.signal });
    await untilClaimsWait(server, before + 1);
    claim.abort();
    await expect(claiming).rejects.toThrow();
    await until(async () => (await claimWaits(server)) === before, 10_000, "the claim's slot to be released");

    // A stream without max_duration lasts until its deadline: none here. Its first task makes its first line.
    const c = await operationClients(server);
    await runWorkflow(c, [{ name: "only", kind: kindName }]);
    const stream = new AbortController();
    const res = await fetch(`${server.baseUrl}/v1/tasks:stream`, { method: "POST", headers: worker, body: JSON.stringify({ kinds: [kindName], workerId: "rest-leaver" }), signal: stream.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes("\n")) text += new TextDecoder().decode((await reader.read()).value);
    expect(JSON.parse(text.slice(0, text.indexOf("\n")))).toMatchObject({ kind: kindName });
    expect(await claimWaits(server)).toBe(before + 1);
    stream.abort();
    await until(async () => (await claimWaits(server)) === before, 10_000, "the stream's slot to be released");
  });
});
