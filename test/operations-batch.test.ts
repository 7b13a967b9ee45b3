import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Operation_State } from "../gen/anvil/operations/v1/operations_pb.js";
import { Code as RpcCode } from "../gen/google/rpc/code_pb.js";
import { databaseKinds } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import { type OperationClients, operationClients, runWorkflow, until } from "./support/operations.js";
import { startServer, type TestServer } from "./support/server.js";

describe.each(databaseKinds)("batched claims and completions on %s", (kind) => {
  let server: TestServer;
  let c: OperationClients;
  let kinds = 0;
  /** A task kind no other test uses: tests share one tenant's queue. */
  const freshKind = () => `batch-${++kinds}`;
  const claimAll = async (k: string, maxTasks: number) =>
    (await c.workers.claimTask({ kinds: [k], workerId: "batcher", maxTasks, maxWait: { seconds: 5n, nanos: 0 } })).tasks;

  beforeAll(async () => {
    server = await startServer(kind, { env: { ANVIL_OPERATIONS_POLL_MS: "200", ANVIL_TASK_RETRY_BASE_MS: "50", ANVIL_TASK_MAX_ATTEMPTS: "3" } });
    c = await operationClients(server);
  });
  afterAll(() => server?.close());

  it("completes each task of a batch on its own lease: refused items are answered and change nothing, the others count", async () => {
    const k = freshKind();
    const ops = [];
    for (let i = 0; i < 4; i++) ops.push(await runWorkflow(c, [{ name: "only", kind: k }]));
    const tasks = await claimAll(k, 10);
    expect(tasks.map((t) => t.operationId).sort()).toEqual(ops.map((o) => o.id).sort());
    const [a, b, lost, retried] = tasks as [(typeof tasks)[0], (typeof tasks)[0], (typeof tasks)[0], (typeof tasks)[0]];
    const lostBefore = (await c.operations.getOperation({ id: lost.operationId })).operation!;
    const unknown = randomUUID();
    const { results } = await c.workers.batchCompleteTasks({
      requests: [
        { taskId: a.id, leaseToken: a.leaseToken, outcome: { case: "result", value: { n: 1 } } },
        { taskId: lost.id, leaseToken: randomUUID(), outcome: { case: "result", value: { stolen: true } } },
        { taskId: unknown, leaseToken: randomUUID(), outcome: { case: "result", value: {} } },
        { taskId: retried.id, leaseToken: retried.leaseToken, outcome: { case: "error", value: { code: RpcCode.UNAVAILABLE, message: "flaky", retryable: true } } },
        { taskId: b.id, leaseToken: b.leaseToken, outcome: { case: "result", value: { n: 2 } } },
        // The same task again: the first completion ended its lease.
        { taskId: a.id, leaseToken: a.leaseToken, outcome: { case: "result", value: { n: 3 } } },
      ],
    });
    // In request order, each with its own answer.
    expect(results.map((r) => r.taskId)).toEqual([a.id, lost.id, unknown, retried.id, b.id, a.id]);
    expect(results.map((r) => r.error?.code ?? 0)).toEqual([0, RpcCode.FAILED_PRECONDITION, RpcCode.NOT_FOUND, 0, 0, RpcCode.FAILED_PRECONDITION]);
    expect(results[1]!.error!.message).toContain("not leased");
    expect(results.map((r) => r.reason)).toEqual(["", "LEASE_LOST", "NOT_FOUND", "", "", "LEASE_LOST"]);
    expect(results.map((r) => r.operationState)).toEqual([
      Operation_State.SUCCEEDED,
      Operation_State.UNSPECIFIED,
      Operation_State.UNSPECIFIED,
      Operation_State.RUNNING,
      Operation_State.SUCCEEDED,
      Operation_State.UNSPECIFIED,
    ]);
    expect((await c.operations.getOperation({ id: a.operationId })).operation!.result).toEqual({ steps: { only: { n: 1 } } });
    expect((await c.operations.getOperation({ id: b.operationId })).operation!.result).toEqual({ steps: { only: { n: 2 } } });
    expect((await c.operations.getOperation({ id: lost.operationId })).operation).toEqual(lostBefore);
    // The retryable failure went back to the queue; the lost one is still leased to its worker.
    const again = await claimAll(k, 10);
    expect(again.map((t) => [t.id, t.attempt])).toEqual([[retried.id, 2]]);
    // Gapless events, one completion each, for every operation the batch touched.
    for (const id of [a.operationId, b.operationId, retried.operationId]) {
      const events = (await c.operations.listOperationEvents({ id, pageSize: 100 })).events;
      expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, i) => i + 1));
      expect(events.filter((e) => e.payload.case === "completion").length).toBe(id === retried.operationId ? 0 : 1);
    }
  });

  it("drains a 100-way fan-out with one batched claim and one batched completion", async () => {
    const k = freshKind();
    const steps = Array.from({ length: 100 }, (_, i) => ({ name: `s${i}`, kind: k }));
    const op = await runWorkflow(c, steps);
    const tasks = await claimAll(k, 100);
    expect(tasks.length).toBe(100);
    const { results } = await c.workers.batchCompleteTasks({
      requests: tasks.map((t) => ({ taskId: t.id, leaseToken: t.leaseToken, outcome: { case: "result", value: { step: t.step } } })),
    });
    expect(results.every((r) => r.error === undefined)).toBe(true);
    // Only the last completion of the operation ends it.
    expect(results.filter((r) => r.operationState === Operation_State.SUCCEEDED).length).toBe(1);
    const done = (await c.operations.getOperation({ id: op.id })).operation!;
    expect(done.state).toBe(Operation_State.SUCCEEDED);
    expect(Object.keys((done.result as { steps: object }).steps).length).toBe(100);
    const events = (await c.operations.listOperationEvents({ id: op.id, pageSize: 1000 })).events;
    expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, i) => i + 1));
  });

  it("is served over REST at POST /v1/tasks:batchComplete", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const [task] = await claimAll(k, 1);
    const res = await fetch(`${server.baseUrl}/v1/tasks:batchComplete`, {
      method: "POST",
      headers: { authorization: `Bearer ${await server.token("acme-worker")}`, "content-type": "application/json" },
      body: JSON.stringify({ requests: [{ taskId: task!.id, leaseToken: task!.leaseToken, result: { via: "rest" } }] }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ results: [{ taskId: task!.id, operationId: op.id, operationState: "STATE_SUCCEEDED" }] });
  });

  it("refuses an empty batch, more than 100 items and an item without outcome, changing nothing", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const [task] = await claimAll(k, 1);
    const good = { taskId: task!.id, leaseToken: task!.leaseToken, outcome: { case: "result" as const, value: {} } };
    await expectCode(c.workers.batchCompleteTasks({ requests: [] }), Code.InvalidArgument);
    await expectCode(c.workers.batchCompleteTasks({ requests: Array.from({ length: 101 }, () => good) }), Code.InvalidArgument);
    const missing = await expectCode(c.workers.batchCompleteTasks({ requests: [good, { taskId: task!.id, leaseToken: task!.leaseToken }] }), Code.InvalidArgument);
    expect(missing.rawMessage).toContain("requests[1]");
    expect((await c.operations.getOperation({ id: op.id })).operation!.state).toBe(Operation_State.RUNNING);
  });
});

describe.each(databaseKinds)("the task stream on %s", (kind) => {
  let server: TestServer;
  let c: OperationClients;
  let kinds = 0;
  const freshKind = () => `stream-${++kinds}`;

  beforeAll(async () => {
    server = await startServer(kind, { env: { ANVIL_OPERATIONS_POLL_MS: "200", ANVIL_WATCH_KEEPALIVE_MS: "400" } });
    c = await operationClients(server);
  });
  afterAll(() => server?.close());

  /** Opens a stream and collects what it sends until cancel(). */
  const open = (k: string, workerId: string, maxInFlight: number) => {
    const abort = new AbortController();
    const tasks: Array<{ id: string; leaseToken: string; operationId: string }> = [];
    let keepAlives = 0;
    const done = (async () => {
      try {
        for await (const m of c.workers.streamTasks({ kinds: [k], workerId, maxInFlight }, { signal: abort.signal })) {
          tasks.push(...m.tasks);
          if (m.keepAlive) keepAlives++;
        }
      } catch (err) {
        if (!abort.signal.aborted) return err;
      }
      return undefined;
    })();
    return { tasks, keepAlives: () => keepAlives, done, cancel: () => abort.abort() };
  };

  it("pushes queued tasks to a waiting worker, never more than its free capacity, and more as it completes them", async () => {
    const k = freshKind();
    const stream = open(k, "streamer", 2);
    await until(() => stream.keepAlives() > 0, 10_000, "the idle stream's keep-alive");
    const first = await runWorkflow(c, [{ name: "only", kind: k }]);
    await until(() => stream.tasks.length === 1, 10_000, "the task pushed to the waiting stream");
    expect(stream.tasks[0]!.operationId).toBe(first.id);
    for (let i = 0; i < 3; i++) await runWorkflow(c, [{ name: "only", kind: k }]);
    await until(() => stream.tasks.length === 2, 10_000, "the second task, up to the capacity");
    // Full: the two queued tasks wait for the worker to free room.
    await new Promise((r) => setTimeout(r, 600));
    expect(stream.tasks.length).toBe(2);
    const [a, b] = stream.tasks as [(typeof stream.tasks)[0], (typeof stream.tasks)[0]];
    await c.workers.batchCompleteTasks({
      requests: [a, b].map((t) => ({ taskId: t.id, leaseToken: t.leaseToken, outcome: { case: "result" as const, value: {} } })),
    });
    await until(() => stream.tasks.length === 4, 10_000, "the next two once both completed");
    expect(new Set(stream.tasks.map((t) => t.id)).size).toBe(4);
    stream.cancel();
    expect(await stream.done).toBeUndefined();
  });

  it("is served over REST as JSON Lines at POST /v1/tasks:stream", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const abort = new AbortController();
    const res = await fetch(`${server.baseUrl}/v1/tasks:stream`, {
      method: "POST",
      headers: { authorization: `Bearer ${await server.token("acme-worker")}`, "content-type": "application/json" },
      body: JSON.stringify({ kinds: [k], workerId: "rest-streamer" }),
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/x-ndjson");
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes("\n")) text += new TextDecoder().decode((await reader.read()).value);
    abort.abort();
    expect(JSON.parse(text.slice(0, text.indexOf("\n")))).toMatchObject({ operationId: op.id, kind: k, attempt: 1 });
  });

  it("ends by itself, cleanly, after max_duration", async () => {
    const started = Date.now();
    const messages = [];
    for await (const m of c.workers.streamTasks({ kinds: [freshKind()], workerId: "brief", maxDuration: { seconds: 0n, nanos: 600_000_000 } })) messages.push(m);
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    expect(messages.every((m) => m.tasks.length === 0)).toBe(true);
  });

  it("refuses bad requests with INVALID_ARGUMENT", async () => {
    const bad = async (request: Parameters<typeof c.workers.streamTasks>[0]) => {
      await expectCode(
        (async () => {
          for await (const _ of c.workers.streamTasks(request)) break;
        })(),
        Code.InvalidArgument,
      );
    };
    await bad({ kinds: ["x"], workerId: "w", maxInFlight: -1 });
    await bad({ kinds: ["x"], workerId: "w", maxDuration: { seconds: -1n, nanos: 0 } });
    await bad({ kinds: ["x"], workerId: "w", leaseDuration: { seconds: 0n, nanos: 500_000_000 } });
    await bad({ kinds: [], workerId: "w" });
    await bad({ kinds: ["Bad Kind"], workerId: "w" });
  });
});
