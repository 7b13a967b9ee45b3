// Housekeeping's SQL (src/housekeeping/retention.repository.ts) straight over
// a real database: which rows each sweep takes (age against the database's
// clock, states, batch size and order), what it takes with them and what it
// leaves, across tenants, with operations of the same ids in two tenants.
// Each test starts from empty tables: the sweeps serve the whole database,
// and this suite's database is its own. The end-to-end suite reaches these
// through the sweeper's timer, where a batch's limit and order do not show.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { RetentionRepository } from "../src/housekeeping/retention.repository.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";

const hour = 3_600_000;

describe.each(databaseKinds)("retention statements on %s", (kind) => {
  const suite = migratedDatabase(kind);

  const retention = () => new RetentionRepository(suite.db);
  const reset = () => sql`truncate operations, operation_events, tasks, artifacts, artifact_chunks, idempotency_keys`.execute(suite.db);
  /** `seconds` before the database's now(), or null. */
  const ago = (seconds: number | null) => (seconds === null ? null : sql`now() - make_interval(secs => ${seconds})`);
  /** An operation in `state`, ended `endedAgo` seconds ago (null: not ended), with `events` events and `tasks` tasks. */
  const operation = async (tenant: string, state: string, endedAgo: number | null, events = 0, tasks = 0, id: string = randomUUID()) => {
    await sql`insert into operations (tenant_id, id, kind, state, end_time) values (${tenant}, ${id}, 'test.retention', ${state}, ${ago(endedAgo)})`.execute(suite.db);
    await sql`insert into operation_events (tenant_id, operation_id, sequence, type, payload)
      select ${tenant}, ${id}, g, 'log', '{}'::jsonb from generate_series(1, ${events}::int) g`.execute(suite.db);
    await sql`insert into tasks (tenant_id, id, operation_id, kind, state, max_attempts)
      select ${tenant}, gen_random_uuid(), ${id}, 'k', 'done', 1 from generate_series(1, ${tasks}::int) g`.execute(suite.db);
    return id;
  };
  const count = async (table: "operations" | "operation_events" | "tasks" | "artifacts" | "artifact_chunks" | "idempotency_keys", where = sql`true`) =>
    Number((await sql<{ n: string }>`select count(*) as n from ${sql.table(table)} where ${where}`.execute(suite.db)).rows[0]!.n);
  const eventsOf = (tenant: string, id: string) => count("operation_events", sql`tenant_id = ${tenant} and operation_id = ${id}`);
  const tasksOf = (tenant: string, id: string) => count("tasks", sql`tenant_id = ${tenant} and operation_id = ${id}`);

  it("names each tenant with an expired lease once, up to a limit, and no tenant whose leases are live or whose tasks are not leased", async () => {
    await reset();
    const lease = async (tenant: string, state: string, expiresAgo: number) => {
      const id = await operation(tenant, "running", null);
      await sql`insert into tasks (tenant_id, id, operation_id, kind, state, max_attempts, lease_expires_at)
        values (${tenant}, gen_random_uuid(), ${id}, 'k', ${state}, 1, ${ago(expiresAgo)})`.execute(suite.db);
    };
    await lease("expired", "leased", 5);
    await lease("expired", "leased", 60);
    await lease("live", "leased", -60);
    await lease("queued", "queued", 60);
    expect(await retention().tenantsWithExpiredLeases(10)).toEqual(["expired"]);
    await lease("expired-too", "leased", 1);
    expect((await retention().tenantsWithExpiredLeases(10)).sort()).toEqual(["expired", "expired-too"]);
    expect(await retention().tenantsWithExpiredLeases(1)).toHaveLength(1);
  });

  it("deletes the events of operations that ended in a final state before the retention, in batches, and no other events", async () => {
    await reset();
    const shared = randomUUID();
    const doomed = [
      await operation("a", "succeeded", 2 * 3600, 3),
      await operation("a", "failed", 3 * 3600, 1),
      await operation("b", "cancelled", 2 * 3600, 1, 0, shared),
    ];
    const kept = [
      await operation("a", "succeeded", 600, 2),
      // Ended long ago by its time, but not in a final state.
      await operation("a", "running", 2 * 3600, 1),
      // The same id as an ended operation, in another tenant: running.
      await operation("c", "running", null, 2, 0, shared),
    ];
    expect(await retention().deleteEventsOfEndedOperations(hour, 2)).toBe(2);
    expect(await count("operation_events")).toBe(10 - 2);
    expect(await retention().deleteEventsOfEndedOperations(hour, 100)).toBe(3);
    expect(await retention().deleteEventsOfEndedOperations(hour, 100)).toBe(0);
    expect(await eventsOf("a", doomed[0]!)).toBe(0);
    expect(await eventsOf("b", shared)).toBe(0);
    expect([await eventsOf("a", kept[0]!), await eventsOf("a", kept[1]!), await eventsOf("c", shared)]).toEqual([2, 1, 2]);
    // The operations themselves stay, for the next statement.
    expect(await count("operations")).toBe(6);
    // A shorter retention takes the recently ended one too.
    expect(await retention().deleteEventsOfEndedOperations(hour / 12, 100)).toBe(2);
  });

  it("deletes operations that ended in a final state before the retention, oldest first, in batches, with their tasks and events", async () => {
    await reset();
    const shared = randomUUID();
    const oldest = await operation("a", "failed", 5 * 3600, 2, 3);
    const older = await operation("b", "cancelled", 4 * 3600, 0, 1, shared);
    const old = await operation("a", "succeeded", 2 * 3600, 1, 2);
    const recent = await operation("a", "succeeded", 600, 1, 1);
    const unfinished = await operation("a", "running", 3 * 3600, 1, 1);
    await operation("c", "running", null, 1, 2, shared);
    expect(await retention().deleteEndedOperations(hour, 2)).toEqual({ operations: 2, tasks: 4 });
    expect([await tasksOf("a", oldest), await tasksOf("b", shared), await tasksOf("a", old)]).toEqual([0, 0, 2]);
    expect(await eventsOf("a", oldest)).toBe(0);
    expect(await retention().deleteEndedOperations(hour, 10)).toEqual({ operations: 1, tasks: 2 });
    expect(await retention().deleteEndedOperations(hour, 10)).toEqual({ operations: 0, tasks: 0 });
    const left = (await sql<{ tenant_id: string; id: string }>`select tenant_id, id from operations order by tenant_id`.execute(suite.db)).rows;
    expect(left).toEqual([{ tenant_id: "a", id: expect.any(String) }, { tenant_id: "a", id: expect.any(String) }, { tenant_id: "c", id: shared }]);
    expect(left.slice(0, 2).map((r) => r.id).sort()).toEqual([recent, unfinished].sort());
    expect([await tasksOf("a", recent), await tasksOf("a", unfinished), await tasksOf("c", shared)]).toEqual([1, 1, 2]);
    expect(await eventsOf("c", shared)).toBe(1);
  });

  it("deletes uploads idle for longer than the limit, with their chunks, and no ready artifact nor upload under way", async () => {
    await reset();
    const operationId = await operation("a", "running", null);
    const artifact = async (state: string, idleSeconds: number) => {
      const id = randomUUID();
      await sql`insert into artifacts (tenant_id, id, operation_id, task_id, name, content_type, chunk_bytes, state, update_time)
        values ('a', ${id}, ${operationId}, gen_random_uuid(), ${id}, 'text/plain', 10, ${state}, ${ago(idleSeconds)})`.execute(suite.db);
      await sql`insert into artifact_chunks (tenant_id, artifact_id, seq, data) values ('a', ${id}, 0, decode('00', 'hex')), ('a', ${id}, 1, decode('01', 'hex'))`.execute(suite.db);
      return id;
    };
    const abandoned = [await artifact("uploading", 3 * 3600), await artifact("uploading", 2 * 3600)];
    const live = await artifact("uploading", 600);
    const ready = await artifact("ready", 5 * 3600);
    expect(await retention().deleteAbandonedUploads(hour, 1)).toBe(1);
    expect(await retention().deleteAbandonedUploads(hour, 10)).toBe(1);
    expect(await retention().deleteAbandonedUploads(hour, 10)).toBe(0);
    const left = (await sql<{ id: string }>`select id from artifacts order by id`.execute(suite.db)).rows.map((r) => r.id);
    expect(left).toEqual([live, ready].sort());
    expect(await count("artifact_chunks", sql`artifact_id in (${sql.join(abandoned)})`)).toBe(0);
    expect(await count("artifact_chunks")).toBe(4);
    expect(await retention().deleteAbandonedUploads(hour / 12, 10)).toBe(1);
  });

  it("deletes idempotency keys first used before the window, oldest first, in batches, in every tenant", async () => {
    await reset();
    const key = async (tenant: string, ageSeconds: number) => {
      const requestId = randomUUID();
      await sql`insert into idempotency_keys (tenant_id, request_id, operation, request_hash, create_time)
        values (${tenant}, ${requestId}, 'test', 'h', ${ago(ageSeconds)})`.execute(suite.db);
      return requestId;
    };
    await key("b", 3 * 3600);
    const old = await key("a", 2 * 3600);
    const recent = await key("a", 600);
    expect(await retention().deleteIdempotencyKeys(hour, 1)).toBe(1);
    const left = async () => (await sql<{ request_id: string }>`select request_id from idempotency_keys order by create_time`.execute(suite.db)).rows.map((r) => r.request_id);
    expect(await left()).toEqual([old, recent]);
    expect(await retention().deleteIdempotencyKeys(hour, 10)).toBe(1);
    expect(await retention().deleteIdempotencyKeys(hour, 10)).toBe(0);
    expect(await left()).toEqual([recent]);
    expect(await retention().deleteIdempotencyKeys(hour / 12, 10)).toBe(1);
  });

  it.runIf(kind === "postgres")("skips the rows another transaction holds, leaving them to a later sweep (PostgreSQL only: row locks)", async () => {
    await reset();
    const held = await operation("a", "succeeded", 3 * 3600, 2, 1);
    const free = await operation("a", "succeeded", 2 * 3600, 2, 1);
    const holder = new pg.Client({ connectionString: suite.url });
    await holder.connect();
    try {
      await holder.query("begin");
      await holder.query("select 1 from operations where tenant_id = 'a' and id = $1 for update", [held]);
      await holder.query("select 1 from operation_events where tenant_id = 'a' and operation_id = $1 and sequence = 1 for update", [held]);
      expect(await retention().deleteEventsOfEndedOperations(hour, 10)).toBe(3);
      expect(await retention().deleteEndedOperations(hour, 10)).toEqual({ operations: 1, tasks: 1 });
      expect(await count("operations")).toBe(1);
      expect(await eventsOf("a", free)).toBe(0);
      await holder.query("rollback");
      expect(await retention().deleteEndedOperations(hour, 10)).toEqual({ operations: 1, tasks: 1 });
      expect(await count("operation_events")).toBe(0);
    } finally {
      await holder.end();
    }
  });
});
