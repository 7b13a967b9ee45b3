import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateToLatest } from "../src/db/migrator.js";
import type { Database } from "../src/db/schema.js";
import { UnitOfWork } from "../src/db/unit-of-work.js";
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
});
