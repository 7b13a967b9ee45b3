// What a transaction of the unit of work is made of, straight over a real
// database (survivors of `npm run mutate` in src/db: the end-to-end suites
// reach these only through services, where a repository handed out twice, an
// announcement registered twice, a request id replayed across tenants or a
// write's ids missed by the audit all look the same as the right thing), and
// the migrator on a fresh database (the suites migrate while they start).
import { randomUUID } from "node:crypto";
import { type Kysely, sql, type Transaction } from "kysely";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { AgentRepository } from "../src/agents/agent.repository.js";
import { ApiKeyRepository } from "../src/apikeys/api-key.repository.js";
import { ArtifactRepository } from "../src/artifacts/artifact.repository.js";
import { AuditRepository } from "../src/audit/audit.repository.js";
import type { Announcement } from "../src/db/after-commit-announcer.js";
import { runCompiled } from "../src/db/compiled-once.js";
import { openDatabase } from "../src/db/database.js";
import { IdempotencyRepository, jsonCodec } from "../src/db/idempotency.repository.js";
import { hasPendingMigrations, migrateToLatest, schemaMismatch } from "../src/db/migrator.js";
import { Repositories } from "../src/db/repositories.js";
import type { Database } from "../src/db/schema.js";
import { TouchedIds } from "../src/db/touched-ids.js";
import { FindingRepository } from "../src/findings/finding.repository.js";
import { IpaRepository } from "../src/ipas/ipa.repository.js";
import { OperationRepository } from "../src/operations/operation.repository.js";
import { TaskRepository, tasksChannel } from "../src/operations/task.repository.js";
import { InternalError, InvalidArgumentError } from "../src/shared/errors.js";
import { UserRepository } from "../src/users/user.repository.js";
import { WebhookRepository } from "../src/webhooks/webhook.repository.js";
import { WorkflowRepository } from "../src/workflows/workflow.repository.js";
import { migrations } from "../migrations/index.js";
import { createTestDatabase, type DatabaseKind, databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";

const classes = {
  users: UserRepository,
  workflows: WorkflowRepository,
  agents: AgentRepository,
  ipas: IpaRepository,
  findings: FindingRepository,
  idempotency: IdempotencyRepository,
  operations: OperationRepository,
  tasks: TaskRepository,
  apiKeys: ApiKeyRepository,
  audit: AuditRepository,
  webhooks: WebhookRepository,
  artifacts: ArtifactRepository,
} as const;
const names = Object.keys(classes) as Array<keyof typeof classes>;

describe.each(databaseKinds)("a transaction's parts on %s", (kind) => {
  const suite = migratedDatabase(kind);
  const inTransaction = <T>(work: (trx: Transaction<Database>) => Promise<T>) => suite.db.transaction().execute(work);
  /** Runs `work` over repositories of `tenant` in a transaction, then its commit hooks. */
  async function transact<T>(tenant: string, work: (tx: Repositories) => Promise<T>): Promise<T> {
    const afterCommit: Array<() => void> = [];
    const result = await inTransaction(async (trx) => {
      const tx = new Repositories(trx, tenant, afterCommit);
      try {
        return await work(tx);
      } finally {
        tx.close();
      }
    });
    for (const hook of afterCommit) hook();
    return result;
  }
  const newUser = (tenant: string) => ({ tenant_id: tenant, id: randomUUID(), email: `${randomUUID()}@example.com`, display_name: "u", roles: [], state: "active" });

  describe("Repositories", () => {
    it("hands out each repository once per transaction, and none once the transaction has ended", async () => {
      let leaked: Repositories | undefined;
      await inTransaction(async (trx) => {
        const tx = new Repositories(trx, "acme", []);
        for (const name of names) {
          const repository = tx[name];
          expect(repository, name).toBeInstanceOf(classes[name]);
          expect(tx[name], name).toBe(repository);
        }
        tx.close();
        leaked = tx;
      });
      for (const name of names) expect(() => leaked![name], name).toThrow(new InternalError("repository used after its transaction ended"));
      expect(() => leaked!.onCommit(() => undefined)).toThrow(InternalError);
    });

    it("refuses every repository after close even when none was asked for before", async () => {
      await inTransaction(async (trx) => {
        for (const name of names) {
          const tx = new Repositories(trx, "acme", []);
          tx.close();
          expect(() => tx[name], name).toThrow(InternalError);
        }
      });
    });

    it("registers commit hooks, and announces a transaction's distinct announcements in one hook after its commit", async () => {
      const afterCommit: Array<() => void> = [];
      const announced: Announcement[][] = [];
      const tenant = `t-${randomUUID()}`;
      let hooked = 0;
      await inTransaction(async (trx) => {
        const tx = new Repositories(trx, tenant, afterCommit, { announce: (a) => announced.push([...a]) });
        tx.onCommit(() => hooked++);
        const operation = await tx.operations.create("test.announce", "resources/x");
        const task = (kind: string) => ({ id: randomUUID(), step: randomUUID(), kind, input: {}, dependsOn: [] });
        await tx.tasks.insert(operation.id, [task("k1"), task("k1"), task("k2")], 3);
        await tx.tasks.insert(operation.id, [task("k1")], 3);
        tx.close();
      });
      expect(announced).toEqual([]);
      expect(afterCommit).toHaveLength(2);
      for (const hook of afterCommit) hook();
      expect(hooked).toBe(1);
      expect(announced).toEqual([
        [
          { channel: tasksChannel, payload: `${tenant}:k1` },
          { channel: tasksChannel, payload: `${tenant}:k2` },
        ],
      ]);
    });

    it("announces nothing, and fails nothing, without an announcer", async () => {
      const hooks: Array<() => void> = [];
      await inTransaction(async (trx) => {
        const tx = new Repositories(trx, "acme", hooks);
        const operation = await tx.operations.create("test.announce", "resources/x");
        await tx.tasks.insert(operation.id, [{ id: randomUUID(), step: "s", kind: "k", input: {}, dependsOn: [] }], 3);
      });
      expect(hooks).toHaveLength(1);
      expect(() => hooks[0]!()).not.toThrow();
    });
  });

  describe("IdempotencyRepository", () => {
    const codec = jsonCodec<{ id: string; at: Date; later: Date | null; note: string }>("at", "later");
    const counting = () => {
      let runs = 0;
      return {
        runs: () => runs,
        work: async () => ({ id: `r${++runs}`, at: new Date("2026-01-02T03:04:05.678Z"), later: null, note: "2026-01-02T03:04:05.678Z" }),
      };
    };
    const key = (fields: Partial<{ requestId: string; operation: string; requestHash: string }> = {}) => ({
      requestId: randomUUID(),
      operation: "things.create",
      requestHash: "hash-1",
      ...fields,
    });

    it("runs the work once per request id and replays its first result, dates restored, to a retry", async () => {
      const { runs, work } = counting();
      const k = key();
      const first = await transact("acme", (tx) => tx.idempotency.run(k, codec, work));
      const retried = await transact("acme", (tx) => tx.idempotency.run(k, codec, work));
      expect(runs()).toBe(1);
      expect(retried).toEqual(first);
      expect(retried.at).toBeInstanceOf(Date);
      expect(retried.note).toBe("2026-01-02T03:04:05.678Z");
      const row = await suite.db.selectFrom("idempotency_keys").selectAll().where("request_id", "=", k.requestId).executeTakeFirstOrThrow();
      expect(row).toMatchObject({ tenant_id: "acme", operation: "things.create", request_hash: "hash-1" });
      expect(typeof row.response === "string" ? JSON.parse(row.response) : row.response).toEqual({ id: "r1", at: "2026-01-02T03:04:05.678Z", later: null, note: "2026-01-02T03:04:05.678Z" });
    });

    it("refuses a request id reused for another request or another use case", async () => {
      const { work } = counting();
      const k = key();
      await transact("acme", (tx) => tx.idempotency.run(k, codec, work));
      for (const other of [{ ...k, requestHash: "hash-2" }, { ...k, operation: "things.delete" }]) {
        const err = await transact("acme", (tx) => tx.idempotency.run(other, codec, work)).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).violations).toEqual([{ field: "request_id", description: "was already used for a different request" }]);
      }
    });

    it("keeps each tenant's request ids apart", async () => {
      const { runs, work } = counting();
      const k = key();
      const acme = await transact("acme", (tx) => tx.idempotency.run(k, codec, work));
      const globex = await transact("globex", (tx) => tx.idempotency.run(k, codec, work));
      expect(runs()).toBe(2);
      expect([acme.id, globex.id]).toEqual(["r1", "r2"]);
      expect((await transact("globex", (tx) => tx.idempotency.run(k, codec, work))).id).toBe("r2");
      expect((await transact("acme", (tx) => tx.idempotency.run(k, codec, work))).id).toBe("r1");
    });

    it("runs the work every time without a request id, storing nothing", async () => {
      const { runs, work } = counting();
      await transact("acme", (tx) => tx.idempotency.run(undefined, codec, work));
      await transact("acme", (tx) => tx.idempotency.run(undefined, codec, work));
      expect(runs()).toBe(2);
    });

    it("claims nothing when the work fails: the retry runs", async () => {
      const k = key();
      await expect(transact("acme", (tx) => tx.idempotency.run(k, codec, () => Promise.reject(new Error("failed"))))).rejects.toThrow("failed");
      const { runs, work } = counting();
      expect((await transact("acme", (tx) => tx.idempotency.run(k, codec, work))).id).toBe("r1");
      expect(runs()).toBe(1);
    });

    it("jsonCodec stores the value as it is and restores only the named fields that hold text", () => {
      const value = { id: "x", at: new Date(0), later: null, note: "1970-01-01T00:00:00.000Z" };
      expect(codec.toJson(value)).toBe(value);
      const json = { id: "x", at: "1970-01-01T00:00:00.000Z", later: null, note: "1970-01-01T00:00:00.000Z" };
      const restored = codec.fromJson(json);
      expect(restored).toEqual({ id: "x", at: new Date(0), later: null, note: "1970-01-01T00:00:00.000Z" });
      expect(json.at).toBe("1970-01-01T00:00:00.000Z");
    });
  });

  describe("TouchedIds", () => {
    it("collects the ids a transaction's inserts, updates and deletes return, and nothing else", async () => {
      const [readOnly, inserted, deleted, quiet] = [newUser("acme"), newUser("acme"), newUser("acme"), newUser("acme")];
      await suite.db.insertInto("users").values([readOnly, deleted]).execute();
      const touched = new TouchedIds();
      await suite.db
        .withPlugin(touched)
        .transaction()
        .execute(async (trx) => {
          await trx.selectFrom("users").select("id").where("id", "=", readOnly.id).execute();
          await trx.insertInto("users").values(inserted).returning("id").execute();
          await trx.updateTable("users").set({ display_name: "v" }).where("id", "=", inserted.id).returning(["id", "email"]).execute();
          await trx.deleteFrom("users").where("id", "=", deleted.id).returning("id").execute();
          await trx.insertInto("users").values(quiet).execute();
          await trx.updateTable("users").set({ display_name: "w" }).where("id", "=", quiet.id).returning(sql<number>`1`.as("id")).execute();
          await sql`update users set display_name = 'x' where id = ${readOnly.id} returning id`.execute(trx);
        });
      expect([...touched.ids].sort()).toEqual([inserted.id, deleted.id].sort());
    });
  });

  describe("runCompiled", () => {
    it("runs a statement compiled once with each call's own parameters, shown to the executor's plugins", async () => {
      const [a, b] = [newUser("acme"), newUser("acme")];
      await suite.db.insertInto("users").values([a, b]).execute();
      const find = suite.db.selectFrom("users").select("email").where("id", "=", "").compile();
      expect((await runCompiled(suite.db, find, [a.id])).rows).toEqual([{ email: a.email }]);
      expect((await runCompiled(suite.db, find, [b.id])).rows).toEqual([{ email: b.email }]);
      expect(find.parameters).toEqual([""]);
      // A plugin sees the compiled write as any built one: TouchedIds collects what it returns.
      const touched = new TouchedIds();
      const rename = suite.db.updateTable("users").set({ display_name: "" }).where("id", "=", "").returning("id").compile();
      await runCompiled(suite.db.withPlugin(touched), rename, ["renamed", a.id]);
      expect([...touched.ids]).toEqual([a.id]);
      expect((await suite.db.selectFrom("users").select("display_name").where("id", "=", a.id).executeTakeFirstOrThrow()).display_name).toBe("renamed");
    });
  });
});

describe.each(databaseKinds)("the migrator on a fresh %s database", (kind: DatabaseKind) => {
  /** Runs `work` on a fresh, unmigrated database of its own. */
  async function fresh<T>(work: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    const database = await createTestDatabase(kind);
    const handle = await openDatabase(
      database.url
        ? { kind: "postgres", url: database.url, poolSize: 2, statementTimeoutMs: 10_000 }
        : { kind: "pglite", dataDir: "memory://", seed: process.env.ANVIL_PGLITE_SEED },
      pino({ level: "silent" }),
    );
    try {
      return await work(handle.db);
    } finally {
      await handle.close();
      await database.drop();
    }
  }
  const known = Object.keys(migrations);

  it("applies every migration in order, once; then nothing is pending and the schema is this build's", async () => {
    await fresh(async (db) => {
      expect(await hasPendingMigrations(db)).toBe(true);
      expect(await schemaMismatch(db)).toBe(`schema is behind: migration ${known.join(", ")} not applied`);
      expect(await migrateToLatest(db)).toEqual(known);
      expect(await migrateToLatest(db)).toEqual([]);
      expect(await hasPendingMigrations(db)).toBe(false);
      expect(await schemaMismatch(db)).toBeUndefined();
      // A newer build's migrations, applied by it: this build is behind them.
      await sql`insert into kysely_migration (name, timestamp) values ('29990102_later', now()), ('29990101_newer', now())`.execute(db);
      expect(await schemaMismatch(db)).toBe("schema is ahead: migration 29990101_newer, 29990102_later unknown to this build");
      // Rolled back by an older build: behind is told first.
      await sql`delete from kysely_migration where name = ${known.at(-1)!}`.execute(db);
      expect(await schemaMismatch(db)).toBe(`schema is behind: migration ${known.at(-1)} not applied`);
      expect(await hasPendingMigrations(db)).toBe(true);
    });
  });

  it("throws naming the migration that failed, the cause kept, and applies none (they run in one transaction)", async () => {
    await fresh(async (db) => {
      await sql`create table users (unrelated int)`.execute(db);
      const err = (await migrateToLatest(db).catch((e: unknown) => e)) as Error;
      expect(err.message).toBe(`migration ${known[1]} failed`);
      expect(err.cause).toBeInstanceOf(Error);
      expect(await schemaMismatch(db)).toBe(`schema is behind: migration ${known.join(", ")} not applied`);
    });
  });

  it("throws when the migrator cannot even start", async () => {
    await fresh(async (db) => {
      await sql`create table kysely_migration (unrelated int)`.execute(db);
      const err = (await migrateToLatest(db).catch((e: unknown) => e)) as Error;
      expect(err.message).toBe("migration (before any migration ran) failed");
      expect(err.cause).toBeInstanceOf(Error);
    });
  });
});
