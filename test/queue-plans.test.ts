import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateToLatest } from "../src/db/migrator.js";
import type { Database } from "../src/db/schema.js";
import { UnitOfWork } from "../src/db/unit-of-work.js";
import { OperationStarter } from "../src/operations/start-operation.js";
import { TaskLifecycle } from "../src/operations/task-lifecycle.js";
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.js";

/**
 * Anvil prepares its statements by name, and after a few executions
 * PostgreSQL may switch a prepared statement to a generic plan, planned
 * without the parameters' values. A partial index (`WHERE state = 'queued'`)
 * is usable in a generic plan only if the query states the same condition
 * with a literal; with `state = $2` the claim scanned and sorted every task
 * ever created, on every claim (a queue of 3,000 drained at 3 tasks/s).
 */
describe.skipIf(!databaseKinds.includes("postgres"))("task queue statements under generic plans", () => {
  let database: TestDatabase;
  let db: Kysely<Database>;
  const executed: Array<{ sql: string; parameters: readonly unknown[] }> = [];

  beforeAll(async () => {
    database = await createTestDatabase("postgres");
    db = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url, max: 2 }) }),
      log: (event) => {
        if (event.level === "query") executed.push({ sql: event.query.sql, parameters: event.query.parameters });
      },
    });
    await migrateToLatest(db);
  });

  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  it("lets the claim's ready pick and expired-lease sweep use their partial indexes", async () => {
    executed.length = 0;
    const lifecycle = new TaskLifecycle({ maxAttempts: 3, retryBaseMs: 100, retryMaxMs: 1_000 });
    const uow = new UnitOfWork(db);
    await uow.transact({ tenant: "acme" }, (tx) => lifecycle.claim(tx, ["bench"], "w1", 30_000));
    await uow.read({ tenant: "acme" }, (tx) => lifecycle.readyBehindHeldOperation(tx, ["bench"]));
    await uow.read({ tenant: "acme" }, (tx) => lifecycle.claimable(tx, ["bench"]));
    // Every statement with the marker: the locked ready pick and the unlocked
    // read of the oldest ready task's operation (a claim's second try).
    const statements = (marker: string) => {
      const found = executed.filter((q) => q.sql.includes(`from "tasks" as "t"`) && q.sql.includes(marker));
      if (found.length === 0) throw new Error(`no statement with ${marker} among:\n${executed.map((q) => q.sql).join("\n")}`);
      return found;
    };
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await client.query("set plan_cache_mode = force_generic_plan");
      const cases = [
        ['"t"."kind" in', "tasks_ready"],
        ['"t"."lease_expires_at" <', "tasks_leased"],
      ] as const;
      const checks = cases.flatMap(([marker, index]) => statements(marker).map((q) => ({ ...q, index })));
      expect(checks.length).toBe(3);
      // A woken claim's first read asks both partial indexes whether anything is claimable.
      const gate = executed.filter((q) => q.sql.includes("as claimable"));
      expect(gate.length).toBe(1);
      checks.push({ ...gate[0]!, index: "tasks_ready" }, { ...gate[0]!, index: "tasks_leased" });
      for (const [i, { sql, parameters, index }] of checks.entries()) {
        await client.query(`prepare q${i} as ${sql}`);
        // EXPLAIN takes no bind parameters: the values go in as literals.
        const args = parameters.map((v) => (typeof v === "number" ? String(v) : client.escapeLiteral(String(v))));
        const plan = await client.query(`explain execute q${i}(${args.join(", ")})`);
        const text = plan.rows.map((r) => r["QUERY PLAN"]).join("\n");
        expect(text, sql).toContain(index);
      }
    } finally {
      await client.end();
    }
  });

  it("lets a claim's append and a batch of completions lock, finish and record their rows by key, never scanning a table", async () => {
    // A queue with history: 2,000 operations of two tasks each, analyzed, so that a scan would show.
    await sql`insert into operations (tenant_id, id, kind, resource, state)
      select 'acme', gen_random_uuid(), 'workflows.run', 'workflows/x', 'succeeded' from generate_series(1, 2000)`.execute(db);
    await sql`insert into tasks (tenant_id, id, operation_id, step, kind, input, state, outcome, max_attempts)
      select 'acme', gen_random_uuid(), o.id, s.step, 'bench', '{}', 'done', 'succeeded', 3 from operations o, (values ('a'), ('b')) as s (step)`.execute(db);
    await sql`analyze operations`.execute(db);
    await sql`analyze tasks`.execute(db);
    const lifecycle = new TaskLifecycle({ maxAttempts: 3, retryBaseMs: 100, retryMaxMs: 1_000 });
    const uow = new UnitOfWork(db);
    const scope = { tenant: "acme" };
    for (let i = 0; i < 3; i++) {
      await uow.transact(scope, (tx) =>
        new OperationStarter({ maxAttempts: 3, retryBaseMs: 100, retryMaxMs: 1_000 }).start(scope, tx, {
          kind: "workflows.run",
          resource: "workflows/x",
          tasks: ["a", "b"].map((step) => ({ step, kind: "batch", input: {}, dependsOn: [] })),
        }),
      );
    }
    executed.length = 0;
    const claimed = await uow.transact(scope, (tx) => lifecycle.claim(tx, ["batch"], "w1", 30_000, 6));
    const answers = await uow.transact(scope, (tx) =>
      lifecycle.completeAll(tx, claimed.map(({ task }) => ({ taskId: task.id, leaseToken: task.leaseToken!, outcome: { result: {} } }))),
    );
    expect(answers.every((a) => "operation" in a)).toBe(true);
    // The claim's pick and append, then the batch's four: lock operations, lock tasks, finish tasks, record operations.
    const batch = executed.filter((q) => q.parameters.length > 0);
    expect(batch.length, batch.map((q) => q.sql).join("\n")).toBe(6);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await client.query("set plan_cache_mode = force_generic_plan");
      for (const [i, { sql: text, parameters }] of batch.entries()) {
        await client.query(`prepare b${i} as ${text}`);
        const args = parameters.map((v) => (typeof v === "number" ? String(v) : client.escapeLiteral(Array.isArray(v) ? `{${v.join(",")}}` : String(v))));
        const plan = (await client.query(`explain execute b${i}(${args.join(", ")})`)).rows.map((r) => r["QUERY PLAN"]).join("\n");
        expect(plan, `${text}\n${plan}`).not.toMatch(/Seq Scan on (tasks|operations)/);
      }
    } finally {
      await client.end();
    }
  });
});
