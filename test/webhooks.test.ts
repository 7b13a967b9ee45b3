import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { Code, type Client } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Webhook as Signer } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../gen/anvil/apikeys/v1/apikeys_pb.js";
import { AuditEvent_Kind, AuditService } from "../gen/anvil/audit/v1/audit_pb.js";
import { FindingService, Finding_Severity } from "../gen/anvil/findings/v1/findings_pb.js";
import { OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { type Webhook, WebhookService } from "../gen/anvil/webhooks/v1/webhooks_pb.js";
import { Workflow_State, WorkflowService } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { failure, readyIpa, domainClients } from "./support/domain-fixtures.js";
import { describeResource } from "./support/resource-suite.js";
import { until } from "./support/operations.js";
import { keyOfTier, limitEnv, outcome } from "./support/rate-limits.js";
import { startServer, type TestServer } from "./support/server.js";
import { mintToken, type TestKey } from "./support/tokens.js";

const alertTarget = { case: "correlateAlert" as const, value: { maxResults: 5 } };

describeResource<typeof WebhookService, Webhook>({
  name: "webhook",
  service: WebhookService,
  writerKey: "acme-editor",
  deniedWriterKeys: ["acme-viewer", "acme-analyzer"],
  deniedReaderKeys: ["acme-analyzer", "acme-worker"],
  create: async (client, seed, requestId) => (await client.createWebhook({ webhook: { displayName: seed, target: alertTarget }, requestId })).webhook!,
  get: async (client, id) => (await client.getWebhook({ id })).webhook!,
  list: async (client, pageSize, pageToken) => {
    const res = await client.listWebhooks({ pageSize, pageToken });
    return { items: res.webhooks, next: res.nextPageToken };
  },
  update: async (client, webhook, seed, etag, mask = ["display_name"]) =>
    (await client.updateWebhook({ webhook: { id: webhook.id, displayName: seed, etag: etag ?? "" }, updateMask: create(FieldMaskSchema, { paths: mask }) })).webhook!,
  isUpdated: (webhook, seed) => webhook.displayName === seed,
  delete: async (client, id, etag) => {
    await client.deleteWebhook({ id, etag: etag ?? "" });
  },
  createInvalid: (client) => client.createWebhook({ webhook: { displayName: "x", target: { case: "runWorkflow", value: { workflowId: "not-a-uuid" } } } }),
  invalidField: "webhook.run_workflow.workflow_id",
  id: (w) => w.id,
  etag: (w) => w.etag,
});

/** A delivery as a Standard Webhooks sender makes it; `tamper` changes what was signed. */
interface Delivery {
  readonly id?: string;
  readonly at?: Date;
  readonly body?: string;
  readonly signature?: string | null;
}

describe.each(databaseKinds)("webhook deliveries on %s", (kind) => {
  let server: TestServer;
  let editor: string;
  let webhooks: Client<typeof WebhookService>;
  let operations: Client<typeof OperationService>;
  let workflowId: string;
  let hook: { webhook: Webhook; secret: string };

  beforeAll(async () => {
    server = await startServer(kind, {
      env: { ANVIL_MAX_WEBHOOK_BYTES: "4096", ...limitEnv(), ANVIL_RATE_LIMIT_IP: JSON.stringify({ burst: 30, ratePerMinute: 1 }), ANVIL_KEYS_POLL_MS: "100" },
    });
    editor = await server.token("acme-editor");
    webhooks = clientFor(WebhookService, "connect-json", server.baseUrl, editor);
    operations = clientFor(OperationService, "connect-json", server.baseUrl, editor);
    const workflows = clientFor(WorkflowService, "connect-json", server.baseUrl, editor);
    workflowId = (await workflows.createWorkflow({ workflow: { displayName: "on push", state: Workflow_State.ACTIVE, steps: [{ name: "check", kind: "demo" }] } })).workflow!.id;
    const created = await webhooks.createWebhook({ webhook: { displayName: "ci", target: { case: "runWorkflow", value: { workflowId } } } });
    hook = { webhook: created.webhook!, secret: created.secret };
  });
  afterAll(() => server?.close());

  async function deliver(webhook: { id: string }, secret: string, d: Delivery = {}): Promise<{ status: number; json: Record<string, unknown>; headers?: Headers }> {
    const id = d.id ?? `msg_${randomUUID()}`;
    const at = d.at ?? new Date();
    const body = d.body ?? JSON.stringify({ event: "push", ref: "refs/heads/main" });
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    };
    const signature = d.signature === undefined ? new Signer(secret).sign(id, at, body) : d.signature;
    if (signature !== null) headers["webhook-signature"] = signature;
    const res = await fetch(`${server.baseUrl}/hooks/${webhook.id}`, { method: "POST", headers, body });
    const answer = { status: res.status, json: (await res.json()) as Record<string, unknown> };
    // Kept apart so answers compare by status and body.
    Object.defineProperty(answer, "headers", { value: res.headers, enumerable: false });
    return answer;
  }

  async function runsOf(id: string): Promise<string[]> {
    const res = await operations.listOperations({ resource: `workflows/${id}`, pageSize: 1000 });
    return res.operations.map((o) => o.id);
  }

  it("returns a Standard Webhooks secret once, never on a replayed create, and the delivery path", async () => {
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(hook.webhook.deliveryPath).toBe(`/hooks/${hook.webhook.id}`);
    expect(hook.webhook.creator).toBe("service_account:acme-editor");
    const requestId = randomUUID();
    const first = await webhooks.createWebhook({ webhook: { displayName: "again", target: alertTarget }, requestId });
    const again = await webhooks.createWebhook({ webhook: { displayName: "again", target: alertTarget }, requestId });
    expect(first.secret).toMatch(/^whsec_/);
    expect(again.secret).toBe("");
    expect(again.webhook).toEqual(first.webhook);
    const got = await fetch(`${server.baseUrl}/v1/webhooks/${hook.webhook.id}`, { headers: { authorization: `Bearer ${editor}` } });
    expect(got.status).toBe(200);
    const text = await got.text();
    expect(text).toContain(hook.webhook.id);
    expect(text).not.toContain(hook.secret.slice(6, 20));
  });

  it("starts the workflow on a valid delivery, exactly once however often it is replayed", async () => {
    const before = await runsOf(workflowId);
    const id = `msg_${randomUUID()}`;
    const first = await deliver(hook.webhook, hook.secret, { id });
    expect(first.status).toBe(202);
    const operation = first.json.operation as { id: string; kind: string; resource: string };
    expect(operation.kind).toBe("workflow.run");
    expect(operation.resource).toBe(`workflows/${workflowId}`);
    // The same delivery again (a sender's retry, or a replay with a fresh signature): the first answer, nothing new.
    const replay = await deliver(hook.webhook, hook.secret, { id });
    expect(replay.status).toBe(202);
    expect((replay.json.operation as { id: string }).id).toBe(operation.id);
    const after = await runsOf(workflowId);
    expect(after.filter((o) => o === operation.id)).toHaveLength(1);
    expect(after.length).toBe(before.length + 1);
    // Audited as the call it made, by the endpoint's creator, through the webhook.
    const audit = clientFor(AuditService, "connect-json", server.baseUrl, await server.token("acme-admin"));
    const events = (await audit.listAuditEvents({ subject: `webhooks/${hook.webhook.id}`, pageSize: 1000 })).events;
    const started = events.filter((e) => e.kind === AuditEvent_Kind.MUTATION && e.resourceIds.includes(operation.id));
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({ method: expect.stringContaining("RunWorkflow"), protocol: "webhook", credentialKind: "service_account", credentialId: "acme-editor" });
    // Another delivery is another run.
    const other = await deliver(hook.webhook, hook.secret);
    expect(other.status).toBe(202);
    expect((other.json.operation as { id: string }).id).not.toBe(operation.id);
  });

  it("refuses bad and missing signatures, stale and future timestamps with 401, starting nothing", async () => {
    const before = await runsOf(workflowId);
    const wrongSecret = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
    const cases: Array<[string, Delivery, string]> = [
      ["wrong secret", { signature: new Signer(wrongSecret).sign("msg_x", new Date(), "{}") }, "signature"],
      ["signed for another body", { id: "msg_body", body: '{"a":2}', signature: new Signer(hook.secret).sign("msg_body", new Date(), '{"a":1}') }, "signature"],
      ["missing signature", { signature: null }, "webhook-signature"],
      ["unknown scheme only", { signature: "v1a,abc" }, "signature"],
      ["stale timestamp", { at: new Date(Date.now() - 6 * 60_000) }, "5 minutes"],
      ["future timestamp", { at: new Date(Date.now() + 6 * 60_000) }, "5 minutes"],
    ];
    for (const [what, d, says] of cases) {
      const res = await deliver(hook.webhook, hook.secret, d);
      expect(res.status, what).toBe(401);
      expect(res.json.code, what).toBe("unauthenticated");
      expect(String(res.json.message), what).toContain(says);
    }
    expect(await runsOf(workflowId)).toEqual(before);
    // Each refusal is audited (off the request path), as the endpoint's creator through the webhook.
    const audit = clientFor(AuditService, "connect-json", server.baseUrl, await server.token("acme-admin"));
    const refusals = async () =>
      (await audit.listAuditEvents({ subject: `webhooks/${hook.webhook.id}`, pageSize: 1000 })).events.filter((e) => e.kind === AuditEvent_Kind.REFUSAL && e.protocol === "webhook");
    await until(async () => (await refusals()).length >= cases.length, 15_000, "the refusals in the audit log");
    expect((await refusals())[0]).toMatchObject({ credentialId: "acme-editor", method: expect.stringContaining("RunWorkflow") });
  });

  it("refuses a body over ANVIL_MAX_WEBHOOK_BYTES with 413, and unknown endpoints and other methods from the headers", async () => {
    const big = JSON.stringify({ pad: "x".repeat(5000) });
    expect((await deliver(hook.webhook, hook.secret, { body: big })).status).toBe(413);
    expect((await deliver({ id: randomUUID() }, hook.secret)).status).toBe(404);
    expect((await deliver({ id: "not-a-uuid" }, hook.secret)).status).toBe(404);
    const get = await fetch(`${server.baseUrl}/hooks/${hook.webhook.id}`);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
  });

  it("keeps endpoints of other tenants invisible, while deliveries still reach their own tenant", async () => {
    const globex = clientFor(WebhookService, "connect-json", server.baseUrl, await server.token("globex-admin"));
    await failure(globex.getWebhook({ id: hook.webhook.id }), Code.NotFound);
    await failure(globex.deleteWebhook({ id: hook.webhook.id }), Code.NotFound);
    expect((await globex.listWebhooks({ pageSize: 1000 })).webhooks.map((w) => w.id)).not.toContain(hook.webhook.id);
    // A globex endpoint naming acme's workflow runs in globex, where that workflow does not exist.
    const theirs = await globex.createWebhook({ webhook: { displayName: "x", target: { case: "runWorkflow", value: { workflowId } } } });
    const res = await deliver(theirs.webhook!, theirs.secret);
    expect(res.status).toBe(404);
    expect(res.json.code).toBe("not_found");
  });

  it("refuses targets the creator could not start, and updates that set none", async () => {
    const analyzer = clientFor(WebhookService, "connect-json", server.baseUrl, await server.token("acme-analyzer"));
    await failure(analyzer.createWebhook({ webhook: { displayName: "x", target: alertTarget } }), Code.PermissionDenied);
    const noTarget = await failure(webhooks.createWebhook({ webhook: { displayName: "x" } }), Code.InvalidArgument);
    expect(noTarget.message).toContain("webhook.target");
    const mismatched = webhooks.updateWebhook({ webhook: { id: hook.webhook.id, target: alertTarget }, updateMask: create(FieldMaskSchema, { paths: ["run_workflow"] }) });
    await failure(mismatched, Code.InvalidArgument);
    expect((await webhooks.getWebhook({ id: hook.webhook.id })).webhook).toEqual(hook.webhook);
  });

  it("limits deliveries by the creator's tier, in the creator's own bucket", async () => {
    const key = await keyOfTier(server, "free", ["editor"]);
    const keyed = clientFor(WebhookService, "connect-json", server.baseUrl, key);
    const created = await keyed.createWebhook({ webhook: { displayName: "free", target: alertTarget } });
    const statuses: number[] = [];
    let refused: { json: Record<string, unknown>; headers?: Headers } | undefined;
    for (let i = 0; i < 12; i++) {
      const res = await deliver(created.webhook!, created.secret, { body: JSON.stringify({ file_path: "src/a.ts" }) });
      statuses.push(res.status);
      if (res.status === 429) refused ??= res;
    }
    // Free: 5 at once, then 1 a second (test tiers); the key's own call above took one.
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(8);
    expect(refused?.json.code).toBe("resource_exhausted");
    expect(refused?.headers?.get("ratelimit-policy")).toContain("free");
    // The same bucket as the key's own calls.
    await failure(keyed.getWebhook({ id: created.webhook!.id }), Code.ResourceExhausted);
  });

  it("executes a deployed IPA, and answers an alert with its correlation, the same on a replay", async () => {
    const c = domainClients(server.baseUrl, editor);
    const { ipa } = await readyIpa(c, "hooked");
    await c.ipas.deployIpa({ id: ipa.id });
    const ipaHook = await webhooks.createWebhook({ webhook: { displayName: "ipa", target: { case: "executeIpa", value: { ipaId: ipa.id } } } });
    const executed = await deliver(ipaHook.webhook!, ipaHook.secret);
    expect(executed.status).toBe(202);
    expect((executed.json.operation as { kind: string }).kind).toBe("ipa.execute");

    const findings = clientFor(FindingService, "connect-json", server.baseUrl, editor);
    const finding = await findings.createFinding({ finding: { filePath: "src/cart.ts", line: 40, severity: Finding_Severity.HIGH, source: "ci", issueType: "null-deref", message: "cart may be null" } });
    const alerts = await webhooks.createWebhook({ webhook: { displayName: "iris", target: alertTarget } });
    const alert = JSON.stringify({ file_path: "/app/src/cart.ts", line: 41, error_message: "TypeError: cart is null", source: "iris", extra: { ignored: true } });
    const id = `msg_${randomUUID()}`;
    const first = await deliver(alerts.webhook!, alerts.secret, { id, body: alert });
    expect(first.status).toBe(200);
    const correlated = first.json.findings as Array<{ finding: { filePath: string } }>;
    expect(correlated.map((f) => f.finding.filePath)).toEqual(["src/cart.ts"]);
    // The finding goes away: a replay still gets the first answer, a new delivery today's.
    await findings.deleteFinding({ id: finding.finding!.id });
    const replay = await deliver(alerts.webhook!, alerts.secret, { id, body: alert });
    expect(replay).toEqual(first);
    const fresh = await deliver(alerts.webhook!, alerts.secret, { body: alert });
    expect(fresh).toEqual({ status: 200, json: {} });
    const notJson = await deliver(alerts.webhook!, alerts.secret, { body: "not json" });
    expect(notJson.status).toBe(400);
  });

  /** A delivery refused because of its endpoint's creator: 403, saying why, starting nothing. */
  async function refusedForCreator(webhook: Webhook, secret: string, why: string): Promise<void> {
    const before = await runsOf(workflowId);
    const res = await deliver(webhook, secret);
    expect(res.status, JSON.stringify(res.json)).toBe(403);
    expect(res.json.code).toBe("permission_denied");
    expect(String(res.json.message)).toContain(webhook.creator);
    expect(String(res.json.message)).toContain(why);
    expect(await runsOf(workflowId)).toEqual(before);
  }

  const runTarget = () => ({ case: "runWorkflow" as const, value: { workflowId } });

  it("acts as its creator as it is now: endpoints of a revoked or expired API key are refused with 403, starting nothing", async () => {
    const admin = clientFor(ApiKeyService, "connect-json", server.baseUrl, await server.token("acme-admin"));
    const revoked = await admin.createApiKey({ apiKey: { displayName: `hook-${randomUUID()}`, roles: ["editor"] } });
    const keyed = clientFor(WebhookService, "connect-json", server.baseUrl, revoked.secret);
    const made = await keyed.createWebhook({ webhook: { displayName: "keyed", target: runTarget() } });
    expect(made.webhook!.creator).toBe(`api_key:${revoked.apiKey!.id}`);
    expect((await deliver(made.webhook!, made.secret)).status).toBe(202);
    await admin.revokeApiKey({ id: revoked.apiKey!.id });
    // Once the revocation reached this instance (the key's own calls are refused), so has it for its endpoints.
    await until(async () => (await outcome(keyed.listWebhooks({})))?.code === Code.Unauthenticated, 5_000, "the revoked key refused");
    await refusedForCreator(made.webhook!, made.secret, "revoked");
    // The refusal is audited as the creator's, through the webhook.
    const audit = clientFor(AuditService, "connect-json", server.baseUrl, await server.token("acme-admin"));
    await until(
      async () =>
        (await audit.listAuditEvents({ subject: `webhooks/${made.webhook!.id}`, pageSize: 100 })).events.some(
          (e) => e.kind === AuditEvent_Kind.REFUSAL && Number(e.outcome) === Code.PermissionDenied && e.credentialId === revoked.apiKey!.id,
        ),
      15_000,
      "the refusal in the audit log",
    );

    const expiring = await admin.createApiKey({ apiKey: { displayName: `hook-${randomUUID()}`, roles: ["editor"], expireTime: timestampFromDate(new Date(Date.now() + 2_000)) } });
    const soon = clientFor(WebhookService, "connect-json", server.baseUrl, expiring.secret);
    const short = await soon.createWebhook({ webhook: { displayName: "expiring", target: runTarget() } });
    expect((await deliver(short.webhook!, short.secret)).status).toBe(202);
    await new Promise((r) => setTimeout(r, 2_100));
    await refusedForCreator(short.webhook!, short.secret, "expired");
  });

  it("acts as its service-account creator as the keys file has it now: a removed key, or one that lost the role, is refused with 403", async () => {
    const write = (keys: readonly TestKey[]) => writeFileSync(server.keysFile, JSON.stringify({ keys }));
    const all = Object.values(server.keys);
    const hooker: TestKey = { ...server.keys["acme-editor"]!, key_id: "acme-hooker", principal: "hooker@acme" };
    write([...all, hooker]);
    const token = await mintToken(hooker);
    const client = clientFor(WebhookService, "connect-json", server.baseUrl, token);
    await until(async () => (await outcome(client.listWebhooks({}))) === undefined, 5_000, "the added key accepted");
    const made = await client.createWebhook({ webhook: { displayName: "sa", target: runTarget() } });
    expect((await deliver(made.webhook!, made.secret)).status).toBe(202);
    try {
      // Demoted to viewer: its tokens still work, but not for starting workflows.
      write([...all, { ...hooker, roles: ["viewer"] }]);
      await until(async () => (await outcome(client.listWebhooks({}))) !== undefined, 5_000, "the changed key's old tokens refused");
      await refusedForCreator(made.webhook!, made.secret, "no longer holds workflows.write");
      write(all);
      await new Promise((r) => setTimeout(r, 500));
      await refusedForCreator(made.webhook!, made.secret, "no longer in the keys file");
    } finally {
      write(all);
    }
  });

  it("audits an alert correlation a delivery made, once however often it is replayed", async () => {
    const alerts = await webhooks.createWebhook({ webhook: { displayName: "iris-audit", target: alertTarget } });
    const id = `msg_${randomUUID()}`;
    const alert = JSON.stringify({ file_path: "src/none.ts", line: 1, error_message: "boom", source: "iris" });
    expect((await deliver(alerts.webhook!, alerts.secret, { id, body: alert })).status).toBe(200);
    expect((await deliver(alerts.webhook!, alerts.secret, { id, body: alert })).status).toBe(200);
    const audit = clientFor(AuditService, "connect-json", server.baseUrl, await server.token("acme-admin"));
    const events = (await audit.listAuditEvents({ subject: `webhooks/${alerts.webhook!.id}`, pageSize: 100 })).events;
    const changes = events.filter((e) => e.kind === AuditEvent_Kind.MUTATION);
    expect(changes).toHaveLength(1);
    expect(changes[0]).toMatchObject({ method: expect.stringContaining("CorrelateAlert"), protocol: "webhook", credentialKind: "service_account", credentialId: "acme-editor", outcome: 0 });
    expect(changes[0]!.parameters?.filePath ?? changes[0]!.parameters?.file_path).toBe("src/none.ts");
  });

  // Last: it leaves this address refused.
  it("charges failed deliveries to the sender's address, and refuses a refused address before reading anything", async () => {
    let status = 0;
    for (let i = 0; i < 40 && status !== 429; i++) status = (await deliver(hook.webhook, hook.secret, { signature: "v1,bad" })).status;
    expect(status).toBe(429);
    const before = await runsOf(workflowId);
    // Even a well-signed delivery from that address waits for its next token.
    const res = await deliver(hook.webhook, hook.secret);
    expect(res.status).toBe(429);
    expect(res.json.code).toBe("resource_exhausted");
    expect(res.headers?.get("retry-after")).toMatch(/^\d+$/);
    expect(await runsOf(workflowId)).toEqual(before);
  });
});
