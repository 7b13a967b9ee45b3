// API key management's SQL (src/apikeys/api-key.repository.ts) straight over
// a real database: what a key is stored as, what a manager who sees only its
// own keys is shown, and what a revocation checks and holds. The end-to-end
// suite reaches these through ApiKeyService, always with a manager.
import { randomUUID } from "node:crypto";
import { sql, type Transaction } from "kysely";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { ApiKeyRepository, type KeyManager } from "../src/apikeys/api-key.repository.js";
import type { Database } from "../src/db/schema.js";
import { AbortedError, InternalError, NotFoundError } from "../src/shared/errors.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";

const admin: KeyManager = { credential: "user:admin", ownOnly: false };
const editor: KeyManager = { credential: "user:editor", ownOnly: true };
const newKey = { displayName: "k", roles: ["viewer"], tier: undefined, expireTime: null };

describe.each(databaseKinds)("API key statements on %s", (kind) => {
  const suite = migratedDatabase(kind);

  const keys = <T>(tenant: string, manager: KeyManager | undefined, work: (k: ApiKeyRepository, trx: Transaction<Database>) => Promise<T>) =>
    suite.db.transaction().execute((trx) => work(new ApiKeyRepository(trx, tenant, manager), trx));
  const newTenant = () => `tenant-${randomUUID().slice(0, 8)}`;

  it("stores a new key as active, created by its manager; refuses to create one without a manager", async () => {
    const tenant = newTenant();
    const key = await keys(tenant, admin, (k) => k.create(newKey));
    expect(key).toMatchObject({ state: "active", creator: "user:admin", roles: ["viewer"], version: 1 });
    const { rows } = await sql<{ state: string }>`select state from api_keys where tenant_id = ${tenant} and id = ${key.id}`.execute(suite.db);
    expect(rows).toEqual([{ state: "active" }]);
    const refused = await keys(tenant, undefined, (k) => k.create(newKey)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InternalError);
    expect((refused as Error).message).toMatch(/without a manager/);
  });

  it("shows every key of the tenant without a manager or to an admin, and only its own to a manager who sees only those", async () => {
    const tenant = newTenant();
    const adminKey = await keys(tenant, admin, (k) => k.create(newKey));
    const editorKey = await keys(tenant, editor, (k) => k.create(newKey));
    const listed = async (manager: KeyManager | undefined) => (await keys(tenant, manager, (k) => k.list(10, undefined))).map((key) => key.id).sort();
    const both = [adminKey.id, editorKey.id].sort();
    expect(await listed(undefined)).toEqual(both);
    expect(await listed(admin)).toEqual(both);
    expect(await listed(editor)).toEqual([editorKey.id]);
    expect((await keys(tenant, undefined, (k) => k.get(adminKey.id))).id).toBe(adminKey.id);
    for (const read of [(k: ApiKeyRepository) => k.get(adminKey.id), (k: ApiKeyRepository) => k.update(adminKey.id, { state: "revoked" }, undefined)]) {
      const hidden = await keys(tenant, editor, read).catch((e: unknown) => e);
      expect(hidden).toBeInstanceOf(NotFoundError);
      expect(hidden).toMatchObject({ resource: "api key", id: adminKey.id });
    }
    expect(await keys(`${tenant}-other`, undefined, (k) => k.get(adminKey.id)).catch((e: unknown) => e)).toMatchObject({ resource: "api key" });
  });

  it("revokes at the expected version only, even when the key is already revoked", async () => {
    const tenant = newTenant();
    const key = await keys(tenant, admin, (k) => k.create(newKey));
    const revoked = await keys(tenant, admin, (k) => k.update(key.id, { state: "revoked" }, 1));
    expect(revoked).toMatchObject({ state: "revoked", version: 2 });
    // Revoking again changes nothing, but a stale version is still refused.
    expect(await keys(tenant, admin, (k) => k.update(key.id, { state: "revoked" }, 2))).toMatchObject({ state: "revoked", version: 2 });
    expect(await keys(tenant, admin, (k) => k.update(key.id, { state: "revoked" }, 1)).catch((e: unknown) => e)).toBeInstanceOf(AbortedError);
  });

  it.runIf(kind === "postgres")("holds the key's row while revoking, even when the key is already revoked (PostgreSQL only: row locks)", async () => {
    const tenant = newTenant();
    const key = await keys(tenant, admin, (k) => k.create(newKey));
    await keys(tenant, admin, (k) => k.update(key.id, { state: "revoked" }, undefined));
    const prober = new pg.Client({ connectionString: suite.url });
    await prober.connect();
    try {
      const othersCanLock = async () => {
        const { rows } = await prober.query("select id from api_keys where tenant_id = $1 and id = $2 for update skip locked", [tenant, key.id]);
        return rows.length === 1;
      };
      expect(await keys(tenant, admin, async (k) => (await k.update(key.id, { state: "revoked" }, undefined), othersCanLock()))).toBe(false);
      expect(await keys(tenant, admin, async (k) => (await k.get(key.id), othersCanLock()))).toBe(true);
    } finally {
      await prober.end();
    }
  });
});
