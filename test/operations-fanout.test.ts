import { Code, type ConnectError } from "@connectrpc/connect";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LogLine_Level, Operation_State } from "../gen/anvil/operations/v1/operations_pb.js";
import { UnitOfWork } from "../src/db/unit-of-work.js";
import { OperationStarter } from "../src/operations/start-operation.js";
import { createTestDatabase, databaseKinds } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import { type PrivatePostgres, privatePostgresAvailable, startPrivatePostgres } from "./support/private-postgres.js";
import { claim, type OperationClients, operationClients, runWorkflow, sequencesOf, until, untilClaimsWait, watchWith } from "./support/operations.js";
import { startServer, type TestServer } from "./support/server.js";

// Polling so slow that only a NOTIFY can explain an event arriving quickly.
const slowPolling = { ANVIL_OPERATIONS_POLL_MS: "60000", ANVIL_WATCH_KEEPALIVE_MS: "60000" };

describe.each(databaseKinds)("operation fan-out on %s", (kind) => {
  let server: TestServer;
  let c: OperationClients;

  beforeAll(async () => {
    server = await startServer(kind, { env: slowPolling });
    c = await operationClients(server);
  });
  afterAll(() => server?.close());

  it("wakes watchers and waiting workers by LISTEN/NOTIFY, not by polling", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: "fanout" }]);
    const watch = watchWith(c.operations, op.id);
    await until(() => watch.messages.length >= 2, 5_000, "the operation and its first event");
    // A claim that waits is woken by the next run's NOTIFY, long before its poll.
    const started = Date.now();
    const waiting = claim(c, "w1", { kinds: ["fanout-late"], waitMs: 20_000 });
    await untilClaimsWait(server, 1);
    await runWorkflow(c, [{ name: "only", kind: "fanout-late" }]);
    const late = (await waiting)!;
    expect(Date.now() - started).toBeLessThan(5_000);
    await c.workers.completeTask({ taskId: late.id, leaseToken: late.leaseToken, outcome: { case: "result", value: {} } });

    const task = (await claim(c, "w1", { kinds: ["fanout"] }))!;
    // The claim's own events reach the watcher first; only then count what the report adds.
    const claimed = (await c.operations.getOperation({ id: op.id })).operation!.lastSequence;
    const lastSeen = () => watch.messages.reduce((n, m) => (m.item.case === "event" ? m.item.value.sequence : n), 0n);
    await until(() => lastSeen() >= claimed, 5_000, "the claim's events");
    await c.workers.reportProgress({ taskId: task.id, leaseToken: task.leaseToken, progress: 0.5 });
    await until(() => lastSeen() > claimed, 5_000, "the progress event, pushed by NOTIFY");
    await c.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: {} } });
    expect(await watch.done).toBeUndefined();
  });

  it("streams long histories in bounded batches to a slow reader, in order and complete", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: "chatty" }]);
    const task = (await claim(c, "w1", { kinds: ["chatty"] }))!;
    for (let batch = 0; batch < 3; batch++) {
      const logs = Array.from({ length: 100 }, (_, i) => ({ level: LogLine_Level.DEBUG, message: `line ${batch * 100 + i}` }));
      await c.workers.reportProgress({ taskId: task.id, leaseToken: task.leaseToken, logs });
    }
    await c.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: {} } });
    const seen: number[] = [];
    for await (const m of c.operations.watchOperation({ id: op.id })) {
      if (m.item.case === "event") seen.push(Number(m.item.value.sequence));
      // A reader slower than the server: the server reads the next batch only when asked.
      if (seen.length % 50 === 0) await new Promise((r) => setTimeout(r, 20));
    }
    const total = Number((await c.operations.getOperation({ id: op.id })).operation!.lastSequence);
    expect(total).toBeGreaterThan(300);
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  });

  it("leaves nothing behind when the starting transaction rolls back", async () => {
    const uow = new UnitOfWork(server.app.database.db);
    const starter = new OperationStarter({ maxAttempts: 3, retryBaseMs: 10, retryMaxMs: 100 });
    const scope = { tenant: `rollback-${kind}` };
    const spec = { kind: "workflow.run", resource: "workflows/x", tasks: [{ step: "a", kind: "demo", input: {}, dependsOn: [] }, { step: "b", kind: "demo", input: {}, dependsOn: ["a"] }] };
    await expect(
      uow.transact(scope, async (tx) => {
        await starter.start(scope, tx, spec);
        throw new Error("the caller's work failed after enqueueing");
      }),
    ).rejects.toThrow("after enqueueing");
    const count = async () => {
      const rows = await sql<{ n: number }>`select
        (select count(*) from operations where tenant_id = ${scope.tenant})::int
        + (select count(*) from tasks where tenant_id = ${scope.tenant})::int
        + (select count(*) from operation_events where tenant_id = ${scope.tenant})::int as n`.execute(server.app.database.db);
      return rows.rows[0]!.n;
    };
    expect(await count()).toBe(0);
    // The same start, committed, writes the operation, both tasks and its first event.
    const op = await uow.transact(scope, (tx) => starter.start(scope, tx, spec));
    expect(op.state).toBe("queued");
    expect(await count()).toBe(4);
  });
});

describe.each(databaseKinds)("a fan-out claimed by waiting workers on %s", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: slowPolling });
  });
  afterAll(() => server?.close());

  it("hands every ready sibling to a waiting worker together, not one per poll", async () => {
    const c = await operationClients(server);
    const siblings = ["a", "b", "c", "d"];
    const op = await runWorkflow(c, [
      { name: "parent", kind: "fan-parent" },
      ...siblings.map((name) => ({ name, kind: "fan-sibling", dependsOn: ["parent"] })),
    ]);
    const parent = (await claim(c, "w0", { kinds: ["fan-parent"] }))!;
    // Four workers already waiting in ClaimTask when the parent completes.
    let completed = Number.POSITIVE_INFINITY;
    const waiting = siblings.map((_, i) =>
      claim(c, `w${i + 1}`, { kinds: ["fan-sibling"], waitMs: 10_000 }).then((task) => ({ task, afterMs: Math.max(0, Date.now() - completed) })),
    );
    await untilClaimsWait(server, siblings.length);
    await c.workers.completeTask({ taskId: parent.id, leaseToken: parent.leaseToken, outcome: { case: "result", value: {} } });
    // Committed before it answers: a sibling claimed sooner counts as 0 ms.
    completed = Date.now();
    const claims = await Promise.all(waiting);
    console.info(`fan-out on ${kind}: parent completion to sibling claims (ms): ${claims.map((x) => x.afterMs).join(", ")}`);
    // Each sibling exactly once, and soon: tens of milliseconds on an idle
    // machine; the bound leaves room for a loaded one. A sibling left to
    // polling (a minute away) comes back empty after the claim's 10 s wait.
    expect(claims.map((x) => x.task?.step).sort()).toEqual(siblings);
    for (const x of claims) expect(x.afterMs).toBeLessThan(500);
    for (const { task } of claims) {
      await c.workers.completeTask({ taskId: task!.id, leaseToken: task!.leaseToken, outcome: { case: "result", value: {} } });
    }
    expect((await c.operations.getOperation({ id: op.id })).operation!.state).toBe(Operation_State.SUCCEEDED);
  });
});

describe.each(databaseKinds)("claims of several tasks at once on %s", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: slowPolling });
  });
  afterAll(() => server?.close());

  it("leases up to max_tasks ready tasks in one call, each with its own lease, and logs every claim", async () => {
    const c = await operationClients(server);
    const op = await runWorkflow(c, ["a", "b", "c"].map((name) => ({ name, kind: "batch" })));
    const single = await runWorkflow(c, [{ name: "only", kind: "batch" }]);
    const ms = { seconds: 5n };
    const res = await c.workers.claimTask({ kinds: ["batch"], workerId: "wb", maxWait: ms, maxTasks: 10 });
    // Every ready task (four, of two operations); `task` repeats the first for older clients.
    expect(res.tasks.map((t) => t.step).sort()).toEqual(["a", "b", "c", "only"]);
    expect(res.task).toEqual(res.tasks[0]);
    expect(new Set(res.tasks.map((t) => t.leaseToken)).size).toBe(4);
    expect(res.tasks.every((t) => t.attempt === 1)).toBe(true);
    const events = async (id: string) => {
      const watch = watchWith(c.operations, id);
      await until(() => watch.messages.filter((m) => m.item.case === "event").length >= 4, 5_000, "the claim's events");
      watch.cancel();
      return watch.messages.flatMap((m) => (m.item.case === "event" ? [m.item.value] : []));
    };
    const logged = (await events(op.id)).filter((e) => e.payload.case === "log").map((e) => e.step);
    expect(logged.sort()).toEqual(["a", "b", "c"]);
    expect((await c.operations.getOperation({ id: op.id })).operation!.state).toBe(Operation_State.RUNNING);
    // Nothing else is ready: the next claim comes back empty.
    expect((await c.workers.claimTask({ kinds: ["batch"], workerId: "wb", maxTasks: 10 })).tasks).toEqual([]);
    for (const t of res.tasks) await c.workers.completeTask({ taskId: t.id, leaseToken: t.leaseToken, outcome: { case: "result", value: {} } });
    for (const id of [op.id, single.id]) expect((await c.operations.getOperation({ id })).operation!.state).toBe(Operation_State.SUCCEEDED);
  });

  it("takes one task when max_tasks is unset, and refuses a negative max_tasks", async () => {
    const c = await operationClients(server);
    await runWorkflow(c, ["a", "b"].map((name) => ({ name, kind: "batch-one" })));
    const res = await c.workers.claimTask({ kinds: ["batch-one"], workerId: "wb" });
    expect(res.tasks.map((t) => t.step)).toEqual(["a"]);
    await expectCode(c.workers.claimTask({ kinds: ["batch-one"], workerId: "wb", maxTasks: -1 }), Code.InvalidArgument);
    // The refused claim changed nothing: b is still there for the next one.
    expect((await c.workers.claimTask({ kinds: ["batch-one"], workerId: "wb", maxTasks: 5 })).tasks.map((t) => t.step)).toEqual(["b"]);
  });
});

describe.each(databaseKinds)("draining an instance on %s", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: slowPolling });
  });
  afterAll(() => server?.close());

  it("ends open watches and waiting claims at once, so they do not hold the shutdown up", async () => {
    const c = await operationClients(server);
    const op = await runWorkflow(c, [{ name: "only", kind: "drain" }]);
    const watch = watchWith(c.operations, op.id);
    await until(() => watch.messages.length >= 2, 5_000, "the watch to start");
    const waiting = claim(c, "w1", { kinds: ["nothing-comes"], waitMs: 20_000 });
    await untilClaimsWait(server, 1);
    const started = Date.now();
    server.app.drain();
    expect(await waiting).toBeUndefined();
    // UNAVAILABLE, not OK: the client knows to resume on another instance.
    expect(Code[((await watch.done) as ConnectError).code]).toBe(Code[Code.Unavailable]);
    expect(Date.now() - started).toBeLessThan(2_000);
    // Ended early: no completion, so the client knows to resume elsewhere.
    expect(watch.messages.some((m) => m.item.case === "event" && m.item.value.payload.case === "completion")).toBe(false);
  });
});

describe.skipIf(!databaseKinds.includes("postgres"))("operation fan-out across gateway instances", () => {
  const servers: TestServer[] = [];
  let drop: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    const database = await createTestDatabase("postgres");
    drop = database.drop;
    servers.push(await startServer("postgres", { database, env: slowPolling }));
    servers.push(await startServer("postgres", { database, env: slowPolling }));
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await drop?.();
  });

  it("delivers events committed on one instance to watchers on another", async () => {
    const [a, b] = [await operationClients(servers[0]!), await operationClients(servers[1]!)];
    const op = await runWorkflow(a, [{ name: "only", kind: "cross" }]);
    const watch = watchWith(b.operations, op.id);
    await until(() => watch.messages.length >= 2, 5_000, "the watch on instance B to start");
    const task = (await claim(a, "w-a", { kinds: ["cross"] }))!;
    await a.workers.reportProgress({ taskId: task.id, leaseToken: task.leaseToken, progress: 0.4, stage: "working" });
    await until(() => watch.messages.some((m) => m.item.case === "event" && m.item.value.payload.case === "progress"), 5_000, "progress on B");
    const done = await a.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: {} } });
    expect(done.operation!.state).toBe(Operation_State.SUCCEEDED);
    expect(await watch.done).toBeUndefined();
    const seqs = sequencesOf(watch.messages);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  });
});

describe.skipIf(!databaseKinds.includes("postgres") || !privatePostgresAvailable)("the notification listener across a database restart", () => {
  let cluster: PrivatePostgres;
  let server: TestServer;

  beforeAll(async () => {
    cluster = await startPrivatePostgres();
    server = await startServer("postgres", { database: { kind: "postgres", url: cluster.url, drop: async () => {} }, env: slowPolling });
  });
  afterAll(async () => {
    await server?.close();
    await cluster?.destroy();
  });

  it("listens again after the server restarts, so watchers are still woken by NOTIFY", async () => {
    const c = await operationClients(server);
    const op = await runWorkflow(c, [{ name: "only", kind: "restart" }]);
    await cluster.restart();
    // The pool recovers on its own; retry the first calls until it has.
    let task: Awaited<ReturnType<typeof claim>>;
    await until(async () => {
      task = await claim(c, "w1", { kinds: ["restart"], waitMs: 0 }).catch(() => undefined);
      return task !== undefined;
    }, 15_000, "the gateway to reach the restarted database");
    // The watch reads the history first; progress reported before that read
    // would arrive through it and prove nothing about LISTEN.
    const history = (await c.operations.listOperationEvents({ id: op.id, pageSize: 100 })).events.length;
    const watch = watchWith(c.operations, op.id);
    await until(() => watch.messages.length >= 1 + history, 10_000, "the watch to deliver the history");
    const progressed = () => watch.messages.some((m) => m.item.case === "event" && m.item.value.payload.case === "progress");
    // Polling is a minute away: only a re-established LISTEN delivers progress this quickly.
    await until(async () => {
      await c.workers.reportProgress({ taskId: task!.id, leaseToken: task!.leaseToken, progress: 0.5 }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
      return progressed();
    }, 15_000, "a progress event pushed after the restart");
    watch.cancel();
  });
});
