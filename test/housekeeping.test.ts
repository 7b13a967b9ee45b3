// The housekeeping sweeper: retention of finished operations (with their
// events and tasks) and of idempotency keys, leases returned where nobody
// claims, and one sweeper per cluster elected by a PostgreSQL advisory lock.
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Operation_State } from "../gen/anvil/operations/v1/operations_pb.js";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gateway-process.js";
import { claim, operationClients, runWorkflow, until } from "./support/operations.js";
import { startServer, type TestServer } from "./support/server.js";
import { testKeys } from "./support/tokens.js";

const sweepEvery = { ANVIL_HOUSEKEEPING_INTERVAL: "200ms" };

/** Rows of `table` for these operation ids, in the server's database. */
async function rowsOf(server: TestServer, table: "operations" | "operation_events" | "tasks", ids: readonly string[]): Promise<number> {
  const column = table === "operations" ? "id" : "operation_id";
  const { rows } = await sql<{ n: string }>`select count(*) as n from ${sql.table(table)} where ${sql.ref(column)} in (${sql.join(ids)})`.execute(
    server.app.database.db,
  );
  return Number(rows[0]!.n);
}

async function scrape(baseUrl: string): Promise<string> {
  return (await fetch(`${baseUrl}/metrics`)).text();
}

/** The value of one sample in a Prometheus text scrape (0 when absent). */
function sample(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe.each(databaseKinds)("housekeeping retention on %s", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: { ...sweepEvery, ANVIL_OPERATIONS_RETENTION: "5s", ANVIL_IDEMPOTENCY_WINDOW: "5s", ANVIL_AUDIT_RETENTION: "30d" } });
  });
  afterAll(() => server?.close());

  it("deletes finished operations with their events and tasks, and old idempotency keys, leaving open operations alone", async () => {
    const c = await operationClients(server);
    // Finished: succeeded (through a worker), and cancelled while queued.
    const succeeded = await runWorkflow(c, [{ name: "only", kind: "hk-done" }]);
    const task = (await claim(c, "hk-worker", { kinds: ["hk-done"] }))!;
    await c.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: { ok: true } } });
    expect((await c.operations.listOperationEvents({ id: succeeded.id })).events.length).toBeGreaterThan(2);
    const cancelled = await runWorkflow(c, [{ name: "only", kind: "hk-cancel" }]);
    await c.operations.cancelOperation({ id: cancelled.id });
    expect((await c.operations.listOperationEvents({ id: cancelled.id })).events.length).toBeGreaterThan(0);
    // Open, and older than the retention by the time the sweeper looks: running (leased for 10 minutes) and queued.
    const running = await runWorkflow(c, [{ name: "only", kind: "hk-run" }], crypto.randomUUID());
    expect(await claim(c, "hk-holder", { kinds: ["hk-run"], leaseMs: 600_000 })).toBeDefined();
    const queued = await runWorkflow(c, [{ name: "a", kind: "hk-queued" }, { name: "b", kind: "hk-queued", dependsOn: ["a"] }]);
    const users = createClient(
      UserService,
      createConnectTransport({
        baseUrl: server.baseUrl,
        httpVersion: "1.1",
        interceptors: [(next) => async (req) => (req.header.set("authorization", `Bearer ${await server.token("acme-admin")}`), next(req))],
      }),
    );
    const requestId = crypto.randomUUID();
    const first = (await users.createUser({ user: { email: "kept@hk.example" }, requestId })).user!;
    // Within the window the key replays the first answer.
    expect((await users.createUser({ user: { email: "kept@hk.example" }, requestId })).user!.id).toBe(first.id);

    const finished = [succeeded.id, cancelled.id];
    const open = [running.id, queued.id];
    const openEvents = await rowsOf(server, "operation_events", open);
    const openTasks = await rowsOf(server, "tasks", open);
    expect(openTasks).toBe(3);

    await until(async () => (await rowsOf(server, "operations", finished)) === 0, 20_000, "finished operations to be deleted");
    expect(await rowsOf(server, "operation_events", finished)).toBe(0);
    expect(await rowsOf(server, "tasks", finished)).toBe(0);
    await expectCode(c.operations.getOperation({ id: succeeded.id }), Code.NotFound);
    await until(async () => {
      const { rows } = await sql<{ n: string }>`select count(*) as n from idempotency_keys`.execute(server.app.database.db);
      return Number(rows[0]!.n) === 0;
    }, 20_000, "idempotency keys past their window to be deleted");

    // The open operations are untouched: their rows, events, tasks and lease.
    expect(await rowsOf(server, "operations", open)).toBe(2);
    expect(await rowsOf(server, "operation_events", open)).toBe(openEvents);
    expect(await rowsOf(server, "tasks", open)).toBe(openTasks);
    expect((await c.operations.getOperation({ id: running.id })).operation!.state).toBe(Operation_State.RUNNING);
    expect((await c.operations.getOperation({ id: queued.id })).operation!.state).toBe(Operation_State.QUEUED);
    // The user is still there; only the key that deduplicated its creation is gone.
    expect((await users.getUser({ id: first.id })).user!.email).toBe("kept@hk.example");

    const metrics = await scrape(server.baseUrl);
    expect(sample(metrics, 'anvil_housekeeping_rows_total{job="operations_retention",table="operations"}')).toBeGreaterThanOrEqual(2);
    expect(sample(metrics, 'anvil_housekeeping_rows_total{job="idempotency_keys_retention",table="idempotency_keys"}')).toBeGreaterThanOrEqual(2);
    expect(sample(metrics, "anvil_housekeeping_leader")).toBe(1);
  }, 60_000);

  it("deletes audit events older than ANVIL_AUDIT_RETENTION, in every tenant, and keeps the rest", async () => {
    const deleted = async () => sample(await scrape(server.baseUrl), 'anvil_housekeeping_rows_total{job="audit_retention",table="audit_events"}');
    const before = await deleted();
    const event = { kind: "refusal" as const, credentialKind: "", credentialId: "", subject: "", method: "m/M", protocol: "grpc", requestId: "", traceId: "", resourceIds: [], outcome: 16, clientAddress: "", userAgent: "", parameters: null, droppedCount: 0 };
    const old = Date.now() - 40 * 86_400_000;
    const recent = Date.now() - 86_400_000;
    await server.app.auditStore.insertMany(
      ["acme", "globex"].flatMap((tenant) => [old, recent].map((t) => ({ tenant, event: { ...event, tenant: "", method: t === old ? "old/Old" : "recent/Recent", time: new Date(t) } }))),
    );
    const count = async (method: string) => Number((await sql<{ n: string }>`select count(*) as n from audit_events where method = ${method}`.execute(server.app.database.db)).rows[0]!.n);
    // The sweeper may run at any moment, even before the first look: wait for its count of deletions, not for a row count.
    await until(async () => (await deleted()) >= before + 2, 30_000, "the sweeper to delete the two old audit events");
    expect(await count("old/Old")).toBe(0);
    expect(await count("recent/Recent")).toBe(2);
  }, 60_000);
});

describe.each(databaseKinds)("housekeeping lease recovery on %s", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: { ...sweepEvery, ANVIL_TASK_RETRY_BASE_MS: "0" } });
  });
  afterAll(() => server?.close());

  it("returns an expired lease to the queue in a tenant where no worker claims any more", async () => {
    const c = await operationClients(server);
    const op = await runWorkflow(c, [{ name: "only", kind: "hk-orphan" }]);
    const task = (await claim(c, "hk-dead-worker", { kinds: ["hk-orphan"], leaseMs: 1_000 }))!;
    expect(task).toBeDefined();
    // The worker dies; nobody in this tenant claims again. The sweeper alone must notice.
    await until(async () => {
      const { rows } = await sql<{ state: string }>`select state from tasks where id = ${task.id}`.execute(server.app.database.db);
      return rows[0]?.state === "queued";
    }, 20_000, "the expired lease to return to the queue");
    const events = (await c.operations.listOperationEvents({ id: op.id })).events;
    const error = events.find((e) => e.payload.case === "error");
    expect(error?.payload.case === "error" && error.payload.value.message).toContain("lease of hk-dead-worker expired");
    expect(error?.payload.case === "error" && error.payload.value.willRetry).toBe(true);
    // And the next worker gets it, on its second attempt.
    const again = (await claim(c, "hk-next-worker", { kinds: ["hk-orphan"] }))!;
    expect(again.id).toBe(task.id);
    expect(again.attempt).toBe(2);
    expect(sample(await scrape(server.baseUrl), 'anvil_housekeeping_rows_total{job="lease_recovery",table="leases_expired"}')).toBeGreaterThanOrEqual(1);
  }, 60_000);
});

describe.skipIf(!databaseKinds.includes("postgres"))("one housekeeping sweeper per cluster on PostgreSQL", () => {
  let database: TestDatabase;
  const gateways: GatewayProcess[] = [];
  beforeAll(async () => {
    database = await createTestDatabase("postgres");
    const keys = testKeys();
    for (let i = 0; i < 2; i++) gateways.push(await startGatewayProcess("postgres", { database, keys, env: sweepEvery }));
  }, 120_000);
  afterAll(async () => {
    for (const g of gateways) await g.close();
    await database?.drop();
  });

  const sweeps = (text: string) => sample(text, 'anvil_housekeeping_sweeps_total{job="operations_retention",outcome="ok"}');

  it("elects one instance with an advisory lock, and another takes over when it is killed", async () => {
    const leaders = async () => Promise.all(gateways.map(async (g) => (g.alive() ? sample(await scrape(g.baseUrl), "anvil_housekeeping_leader") : 0)));
    await until(async () => (await leaders()).reduce((a, b) => a + b) === 1, 15_000, "one leader");
    const leader = gateways[(await leaders()).indexOf(1)]!;
    const other = gateways.find((g) => g !== leader)!;
    // Over several sweep intervals, only the leader sweeps.
    const before = sweeps(await scrape(leader.baseUrl));
    await new Promise((r) => setTimeout(r, 1_500));
    expect(sweeps(await scrape(leader.baseUrl))).toBeGreaterThan(before);
    expect(sweeps(await scrape(other.baseUrl))).toBe(0);
    expect(sample(await scrape(other.baseUrl), "anvil_housekeeping_leader")).toBe(0);
    // PostgreSQL agrees: one advisory lock granted in this database.
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      const granted = async () =>
        Number((await admin.query<{ n: string }>("select count(*) as n from pg_locks where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())")).rows[0]!.n);
      expect(await granted()).toBe(1);

      // The leader dies without a word; its connection ends, so does its lock.
      leader.kill("SIGKILL");
      await leader.exited;
      await until(async () => sample(await scrape(other.baseUrl), "anvil_housekeeping_leader") === 1, 15_000, "the other instance to take over");
      await until(async () => sweeps(await scrape(other.baseUrl)) > 0, 5_000, "the new leader to sweep");
      expect(await granted()).toBe(1);
    } finally {
      await admin.end();
    }
  }, 120_000);
});
