// PostgreSQL only: on a million operations, every filtered ListOperations
// page (first and next) is an index scan, never a scan of the whole table,
// and so are the housekeeping sweeper's searches. PGlite has no planner
// statistics worth asserting on.
import { type CompiledQuery, Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateToLatest } from "../src/db/migrator.js";
import type { Database } from "../src/db/schema.js";
import { RetentionRepository } from "../src/housekeeping/retention.repository.js";
import type { OperationFilter } from "../src/operations/operation.js";
import { OperationRepository } from "../src/operations/operation.repository.js";
import { createTestDatabase, type TestDatabase } from "./support/databases.js";

const operations = 1_000_000;

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

describe.skipIf(!process.env.TEST_DATABASE_URL)("ListOperations on a million operations (PostgreSQL only)", () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  let db: Kysely<Database>;
  const captured: CompiledQuery[] = [];

  beforeAll(async () => {
    database = await createTestDatabase("postgres");
    pool = new pg.Pool({ connectionString: database.url, max: 2 });
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: (event) => void captured.push(event.query) });
    await migrateToLatest(db);
    // Ten tenants, twenty kinds, every state, 50,000 resources; one operation a second into the past.
    await sql`
      insert into operations (tenant_id, id, kind, resource, state, create_time, update_time, end_time)
      select 'tenant-' || (i % 10), gen_random_uuid(), 'kind-' || ((i / 3) % 20), 'resources/' || ((i::bigint * 7919) % 50000),
             state, now() - make_interval(secs => i), now(),
             case when state in ('succeeded', 'failed', 'cancelled') then now() - make_interval(secs => i) end
      from (select i, (array['queued', 'running', 'succeeded', 'failed', 'cancelled'])[1 + (i / 10) % 5] as state
            from generate_series(1, ${operations}) as i) as g`.execute(db);
    await sql`insert into idempotency_keys (tenant_id, request_id, operation, request_hash, create_time)
      select 'tenant-' || (i % 10), gen_random_uuid(), 'users.create', 'h', now() - make_interval(secs => i)
      from generate_series(1, 200000) as i`.execute(db);
    await sql`analyze operations`.execute(db);
    await sql`analyze idempotency_keys`.execute(db);
  }, 600_000);
  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  /** The plan PostgreSQL chooses for the statement, with its parameters bound as the gateway binds them. */
  async function plan(query: CompiledQuery): Promise<PlanNode[]> {
    const { rows } = await pool.query<{ "QUERY PLAN": Array<{ Plan: PlanNode }> }>(`explain (format json) ${query.sql}`, [...query.parameters]);
    return nodes(rows[0]!["QUERY PLAN"][0]!.Plan);
  }

  /** Runs the repository's list and returns the plans of its statement: the first page and a next one. */
  async function listPlans(filter: OperationFilter): Promise<PlanNode[][]> {
    const plans: PlanNode[][] = [];
    for (const after of [undefined, [new Date(Date.now() - 3_600_000), "ffffffff-ffff-4fff-bfff-ffffffffffff"]]) {
      captured.length = 0;
      await db.transaction().execute((trx) => new OperationRepository(trx, "tenant-3", () => undefined).list(filter, 51, after));
      plans.push(await plan(captured.find((q) => q.sql.includes('from "operations"'))!));
    }
    return plans;
  }

  const filters: Array<[string, OperationFilter]> = [
    ["no filter", {}],
    ["state", { state: "running" }],
    ["kind", { kind: "kind-3" }],
    ["resource", { resource: "resources/13" }],
    ["state and kind", { state: "succeeded", kind: "kind-13" }],
    ["state and resource", { state: "succeeded", resource: "resources/13" }],
    ["kind and resource", { kind: "kind-13", resource: "resources/13" }],
    ["state, kind and resource", { state: "succeeded", kind: "kind-13", resource: "resources/13" }],
  ];

  it.each(filters)("filtered by %s: an index scan, first page and next", async (_name, filter) => {
    for (const steps of await listPlans(filter)) {
      const onOperations = steps.filter((n) => n["Relation Name"] === "operations");
      expect(onOperations.map((n) => n["Node Type"])).not.toContain("Seq Scan");
      expect(onOperations.some((n) => n["Node Type"] === "Index Scan" || n["Node Type"] === "Index Only Scan")).toBe(true);
      // No sort of the matches: the index gives the page in order and the scan stops after it.
      expect(steps.map((n) => n["Node Type"])).not.toContain("Sort");
    }
  });

  it("the sweeper finds ended operations and old idempotency keys through indexes", async () => {
    const retention = new RetentionRepository(db);
    // One batch each, run for real (this is the last test), to capture the statements as the sweeper sends them.
    captured.length = 0;
    expect((await retention.deleteEndedOperations(7 * 86_400_000, 500)).operations).toBe(500);
    expect(await retention.deleteIdempotencyKeys(86_400_000, 1_000)).toBe(1_000);
    const [operationsQuery, keysQuery] = captured;
    const ops = await plan(operationsQuery!);
    expect(ops.filter((n) => n["Relation Name"] === "operations").map((n) => n["Index Name"])).toContain("operations_ended");
    expect(ops.filter((n) => n["Relation Name"] === "operations").map((n) => n["Node Type"])).not.toContain("Seq Scan");
    const keys = await plan(keysQuery!);
    expect(keys.filter((n) => n["Relation Name"] === "idempotency_keys").map((n) => n["Node Type"])).not.toContain("Seq Scan");
  }, 60_000);
});
