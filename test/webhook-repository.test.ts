// The webhooks' SQL (src/webhooks/webhook.repository.ts and
// webhook-endpoint.repository.ts) straight over a real database: what an
// endpoint is stored as (its target, signing key and creator), read back as
// by management in its tenant and by deliveries across tenants, which fields
// a patch changes, versions and pages, with another tenant's endpoints
// beside the caller's. The end-to-end suite reaches these through
// WebhookService and the delivery route.
import { randomUUID } from "node:crypto";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { describe, expect, it } from "vitest";
import type { Database } from "../src/db/schema.js";
import type { NewWebhook, Webhook, WebhookOwner, WebhookPatch, WebhookTarget } from "../src/webhooks/webhook.js";
import { WebhookEndpointRepository } from "../src/webhooks/webhook-endpoint.repository.js";
import { WebhookRepository } from "../src/webhooks/webhook.repository.js";
import { secretOf } from "../src/webhooks/webhook-secret.js";
import { InternalError, NotFoundError, UnavailableError } from "../src/shared/errors.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";
import { expectOldestFirstPages, expectVersionedWrites, failure, newTenant, twinCreator, twinOf } from "./support/tenant-twins.js";

const owner: WebhookOwner = { tenant: "ignored", roles: ["operator", "viewer"], credential: { kind: "api_key", id: "k1" }, tier: "pro" };
const targets: WebhookTarget[] = [
  { kind: "run_workflow", workflowId: randomUUID() },
  { kind: "execute_ipa", ipaId: randomUUID() },
  { kind: "correlate_alert", maxResults: 7 },
];
const newWebhook = (over: Partial<NewWebhook> = {}): NewWebhook => ({ displayName: "Hook", target: targets[0], ...over });

describe.each(databaseKinds)("webhook statements on %s", (kind) => {
  const suite = migratedDatabase(kind);

  const webhooks = <T>(tenant: string, work: (w: WebhookRepository) => Promise<T>, by: WebhookOwner | null = owner): Promise<T> =>
    suite.db.transaction().execute((trx) => work(by ? new WebhookRepository(trx, tenant).ownedBy(by) : new WebhookRepository(trx, tenant)));
  /** Creates `input` in `tenant` and the same in its twin tenant, which nothing done in `tenant` may touch. */
  const twinIn = twinCreator(webhooks, (w, input: NewWebhook) => w.create(input));
  const twin = (tenant: string, input: NewWebhook = newWebhook()) => twinIn(tenant, input);
  const withoutSecret = ({ secret: _, ...webhook }: Webhook): Webhook => webhook;
  const otherNow = (tenant: string, webhook: Webhook) => webhooks(twinOf(tenant), (w) => w.get(webhook.id));

  it("creates an endpoint for each kind of target, created by its owner with a fresh secret, and gets it in its tenant only", async () => {
    const tenant = newTenant();
    const secrets = new Set<string>();
    for (const target of targets) {
      const { mine } = await twin(tenant, newWebhook({ displayName: target.kind, target }));
      expect(mine).toMatchObject({ displayName: target.kind, target, creator: "api_key:k1", version: 1 });
      expect(mine.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      secrets.add(mine.secret!);
      expect(mine.createTime).toBeInstanceOf(Date);
      expect(mine.updateTime).toBeInstanceOf(Date);
      expect(Object.keys(mine).sort()).toEqual(["createTime", "creator", "displayName", "id", "secret", "target", "updateTime", "version"]);
      // The secret leaves the gateway once: reads do not carry it.
      const read = await webhooks(tenant, (w) => w.get(mine.id));
      expect(read).toEqual(withoutSecret(mine));
      expect("secret" in read).toBe(false);
      const elsewhere = await failure(webhooks(twinOf(tenant), (w) => w.get(mine.id)));
      expect(elsewhere).toBeInstanceOf(NotFoundError);
      expect(elsewhere).toMatchObject({ resource: "webhook", id: mine.id });
    }
    expect(secrets.size).toBe(targets.length);
  });

  it("refuses to create an endpoint without an owner or without a target", async () => {
    const tenant = newTenant();
    for (const [by, input] of [[null, newWebhook()], [owner, newWebhook({ target: undefined })]] as const) {
      const refused = await failure(webhooks(tenant, (w) => w.create(input), by));
      expect(refused).toBeInstanceOf(InternalError);
      expect((refused as Error).message).toMatch(/without an owner or a target/);
    }
    expect(await webhooks(tenant, (w) => w.list(10, undefined))).toEqual([]);
  });

  it("finds an endpoint by id in any tenant, with what its deliveries need: tenant, target, signing key, creator's roles and tier", async () => {
    const tenant = newTenant();
    const endpoints = new WebhookEndpointRepository(suite.db);
    for (const target of targets) {
      const { mine, other } = await twin(tenant, newWebhook({ target }));
      for (const [t, created] of [[tenant, mine], [twinOf(tenant), other]] as const) {
        const found = await endpoints.find(created.id);
        expect(found).toEqual({ id: created.id, tenant: t, target, signingKey: expect.any(Buffer), creator: "api_key:k1", roles: ["operator", "viewer"], tier: "pro" });
        expect(secretOf(found!.signingKey)).toBe(created.secret);
      }
    }
    expect(await endpoints.find(randomUUID())).toBeUndefined();
  });

  it("answers UNAVAILABLE when a delivery's endpoint cannot be read because the database cannot be reached", async () => {
    const pool = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:1/unreachable", connectionTimeoutMillis: 5_000 });
    const unreachable = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    try {
      expect(await failure(new WebhookEndpointRepository(unreachable).find(randomUUID()))).toBeInstanceOf(UnavailableError);
    } finally {
      await unreachable.destroy();
    }
  });

  it("updates the name and the target on their own, leaving the rest, the key and the other tenant's endpoint as they were", async () => {
    const tenant = newTenant();
    const { mine, other } = await twin(tenant);
    const endpoints = new WebhookEndpointRepository(suite.db);
    const key = (await endpoints.find(mine.id))!.signingKey;
    const patches: WebhookPatch[] = [{ displayName: "Renamed" }, { target: targets[2] }, { target: targets[1] }, { target: targets[0] }, {}];
    let expected = withoutSecret(mine);
    for (const [i, patch] of patches.entries()) {
      const updated = await webhooks(tenant, (w) => w.update(mine.id, patch, undefined), null);
      expected = { ...expected, ...patch, version: i + 2, updateTime: updated.updateTime };
      expect(updated).toEqual(expected);
      expect(await webhooks(tenant, (w) => w.get(mine.id))).toEqual(expected);
      expect((await endpoints.find(mine.id))!.target).toEqual(expected.target);
    }
    // Each target kind stores only its own fields: the alert correlation's limit is gone with it.
    const { rows } = await sql`select target_id, max_results from webhooks where tenant_id = ${tenant} and id = ${mine.id}`.execute(suite.db);
    expect(rows).toEqual([{ target_id: (targets[0] as { workflowId: string }).workflowId, max_results: 0 }]);
    expect((await endpoints.find(mine.id))!.signingKey).toEqual(key);
    expect(await otherNow(tenant, other)).toEqual(withoutSecret(other));
  });

  it("reads a stored target as it is, and refuses a kind it does not know as INTERNAL", async () => {
    const tenant = newTenant();
    const { mine } = await twin(tenant, newWebhook({ target: targets[2] }));
    await sql`update webhooks set target_id = ${randomUUID()}, max_results = 3 where tenant_id = ${tenant} and id = ${mine.id}`.execute(suite.db);
    expect((await webhooks(tenant, (w) => w.get(mine.id))).target).toEqual({ kind: "correlate_alert", maxResults: 3 });
    for (const stored of ["run_workflow", "execute_ipa"]) {
      await sql`update webhooks set target_kind = ${stored}, target_id = null where tenant_id = ${tenant} and id = ${mine.id}`.execute(suite.db);
      const target = (await webhooks(tenant, (w) => w.get(mine.id))).target;
      expect(target).toEqual(stored === "run_workflow" ? { kind: stored, workflowId: "" } : { kind: stored, ipaId: "" });
    }
    await sql`update webhooks set target_kind = 'send_mail' where tenant_id = ${tenant} and id = ${mine.id}`.execute(suite.db);
    const refused = await failure(webhooks(tenant, (w) => w.get(mine.id)));
    expect(refused).toBeInstanceOf(InternalError);
    expect((refused as Error).message).toMatch(/unknown target kind send_mail/);
    expect(await failure(new WebhookEndpointRepository(suite.db).find(mine.id))).toBeInstanceOf(InternalError);
  });

  it("updates and deletes at the expected version only: ABORTED when stale, NOT_FOUND in another tenant", async () => {
    const tenant = newTenant();
    const { mine, other } = await twin(tenant);
    await expectVersionedWrites(webhooks, tenant, mine, "webhook");
    // Deliveries, which read across tenants, no longer find it either.
    expect(await new WebhookEndpointRepository(suite.db).find(mine.id)).toBeUndefined();
    expect(await otherNow(tenant, other)).toEqual(withoutSecret(other));
  });

  it("lists the tenant's endpoints oldest first, the id breaking ties, in pages after a keyset position", async () => {
    const tenant = newTenant();
    const [a, b, c] = [(await twin(tenant)).mine, (await twin(tenant)).mine, (await twin(tenant)).mine];
    await expectOldestFirstPages(suite.db, "webhooks", webhooks, tenant, [a!, b!, c!]);
  });
});
