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

  it("answers a mixed batch in request order exactly as CompleteTask one by one would: the same answers, operations and events", async () => {
    // The same operations, claimed and reported alike, completed once in one batch and once call by call:
    // successes that end an operation or not (a fan-out, a chain releasing its next step), failures for good
    // and retried, a lost lease, an unknown task, a compensation, the same task twice, an operation with a
    // success and a failure, and one being cancelled.
    const setUp = async () => {
      const kindOf = Object.fromEntries(["fan", "single", "chain", "fail", "retry", "lost", "saga", "undo", "twice", "mixed", "cancel"].map((r) => [r, freshKind()]));
      const ops: Record<string, string> = {};
      const fan = await runWorkflow(c, ["a1", "a2", "a3"].map((name) => ({ name, kind: kindOf.fan })));
      ops.fan = fan.id;
      for (const role of ["single", "fail", "retry", "lost", "cancel"]) ops[role] = (await runWorkflow(c, [{ name: "only", kind: kindOf[role] }])).id;
      ops.chain = (await runWorkflow(c, [{ name: "x", kind: kindOf.chain }, { name: "y", kind: kindOf.chain, dependsOn: ["x"] }])).id;
      ops.saga = (
        await runWorkflow(c, [
          { name: "a", kind: kindOf.saga, compensation: { kind: kindOf.undo! } },
          { name: "b", kind: kindOf.saga, dependsOn: ["a"] },
        ])
      ).id;
      ops.twice = (await runWorkflow(c, ["t1", "t2"].map((name) => ({ name, kind: kindOf.twice })))).id;
      ops.mixed = (await runWorkflow(c, ["m1", "m2"].map((name) => ({ name, kind: kindOf.mixed })))).id;
      const claimed = async (role: string) => Object.fromEntries((await claimAll(kindOf[role]!, 10)).map((t) => [`${role}.${t.step || "only"}`, t]));
      const t = Object.assign({}, ...(await Promise.all(["fan", "single", "chain", "fail", "retry", "lost", "twice", "mixed", "cancel"].map(claimed))));
      // Progress reported on the fan-out's tasks: each success's progress counts its siblings still leased.
      await c.workers.reportProgress({ taskId: t["fan.a2"].id, leaseToken: t["fan.a2"].leaseToken, progress: 0.25 });
      await c.workers.reportProgress({ taskId: t["fan.a3"].id, leaseToken: t["fan.a3"].leaseToken, progress: 0.5 });
      // The saga's step a succeeded and b failed for good: the operation compensates, a's undo is leased.
      const a = (await claimAll(kindOf.saga!, 10))[0]!;
      await c.workers.completeTask({ taskId: a.id, leaseToken: a.leaseToken, outcome: { case: "result", value: { booked: 1 } } });
      const b = (await claimAll(kindOf.saga!, 10))[0]!;
      await c.workers.completeTask({ taskId: b.id, leaseToken: b.leaseToken, outcome: { case: "error", value: { code: RpcCode.ABORTED, message: "declined", retryable: false } } });
      t["undo.a"] = (await claimAll(kindOf.undo!, 10))[0]!;
      await c.operations.cancelOperation({ id: ops.cancel! });
      const ok = (key: string, value: Record<string, number> = { n: 1 }) => ({ taskId: t[key].id, leaseToken: t[key].leaseToken, outcome: { case: "result" as const, value } });
      const failed = (key: string, retryable: boolean) => ({
        taskId: t[key].id,
        leaseToken: t[key].leaseToken,
        outcome: { case: "error" as const, value: { code: RpcCode.UNAVAILABLE, message: `${key} failed`, retryable } },
      });
      const requests = [
        ok("fan.a1", { a: 1 }),
        ok("single.only"),
        { ...ok("lost.only"), leaseToken: randomUUID() },
        ok("fan.a2", { a: 2 }),
        { taskId: randomUUID(), leaseToken: randomUUID(), outcome: { case: "result" as const, value: {} } },
        ok("chain.x"),
        failed("fail.only", false),
        ok("twice.t1"),
        failed("retry.only", true),
        ok("undo.a", { undone: 1 }),
        ok("twice.t1", { n: 2 }),
        ok("mixed.m1"),
        ok("cancel.only"),
        ok("twice.t2"),
        failed("mixed.m2", false),
      ];
      // Where each operation's events stood before the completions (its claims' order is the queue's, not the test's).
      const before = Object.fromEntries(await Promise.all(Object.entries(ops).map(async ([role, id]) => [role, (await c.operations.getOperation({ id })).operation!.lastSequence])));
      return { ops, requests, kindOf, before };
    };
    const batched = await setUp();
    const oneByOne = await setUp();
    const { results } = await c.workers.batchCompleteTasks({ requests: batched.requests });
    const answers = [];
    for (const request of oneByOne.requests) {
      try {
        const { operation } = await c.workers.completeTask(request);
        answers.push({ code: 0, state: operation!.state });
      } catch (err) {
        answers.push({ code: (err as { code: number }).code, state: Operation_State.UNSPECIFIED });
      }
    }
    expect(results.map((r) => r.taskId)).toEqual(batched.requests.map((r) => r.taskId));
    expect(results.map((r) => ({ code: r.error?.code ?? 0, state: r.operationState }))).toEqual(answers);
    expect(results.map((r) => r.reason)).toEqual(["", "", "LEASE_LOST", "", "NOT_FOUND", "", "", "", "", "", "LEASE_LOST", "", "", "", ""]);
    expect(results.map((r) => r.operationState)).toEqual([
      Operation_State.RUNNING, // fan: a1, a3 still leased
      Operation_State.SUCCEEDED,
      Operation_State.UNSPECIFIED,
      Operation_State.RUNNING, // fan: a2
      Operation_State.UNSPECIFIED,
      Operation_State.RUNNING, // chain: y released
      Operation_State.FAILED,
      Operation_State.RUNNING, // twice: t1
      Operation_State.RUNNING, // retried
      Operation_State.FAILED, // the saga's undo succeeded: compensated, failed
      Operation_State.UNSPECIFIED,
      Operation_State.RUNNING, // mixed: m1
      Operation_State.CANCELLED,
      Operation_State.SUCCEEDED, // twice: t2
      Operation_State.FAILED, // mixed: m2 failed for good
    ]);
    /** The events of a run's operation, the completions' only (numbered from their first) unless `from` is 0; its task kinds by role. */
    const eventsOf = async (run: typeof batched, role: string, from = run.before[role]!) => {
      const roleOf = new Map(Object.entries(run.kindOf).map(([r, k]) => [k, r]));
      return (await c.operations.listOperationEvents({ id: run.ops[role]!, pageSize: 1000 })).events.flatMap((e) =>
        e.sequence <= from
          ? []
          : [
              {
                sequence: e.sequence - from,
                step: e.step,
                case: e.payload.case,
                // The retry time is the clock's, a compensation's kind the run's.
                value:
                  e.payload.case === "error"
                    ? { ...e.payload.value, retryTime: undefined }
                    : e.payload.case === "compensation"
                      ? { ...e.payload.value, kind: roleOf.get(e.payload.value.kind) }
                      : e.payload.value,
              },
            ],
      );
    };
    const stateOf = async (run: typeof batched, role: string) => {
      const roleOf = new Map(Object.entries(run.kindOf).map(([r, k]) => [k, r]));
      const { state, progress, stage, message, result, error, cancelRequested, compensations } = (await c.operations.getOperation({ id: run.ops[role]! })).operation!;
      return { state, progress, stage, message, result, error, cancelRequested, compensations: compensations.map((r) => ({ ...r, kind: roleOf.get(r.kind) })) };
    };
    for (const role of Object.keys(batched.ops)) {
      expect(await eventsOf(batched, role), role).toEqual(await eventsOf(oneByOne, role));
      const all = await eventsOf(batched, role, 0n);
      expect(all.map((e) => Number(e.sequence)), role).toEqual(all.map((_, i) => i + 1));
      expect(await stateOf(batched, role), role).toEqual(await stateOf(oneByOne, role));
    }
    // The fan-out's progress as each success left it: a2 (0.25) and a3 (0.5) leased, then a3 alone.
    const progress = (await eventsOf(batched, "fan")).flatMap((e) => (e.case === "progress" ? [(e.value as { progress: number }).progress] : []));
    expect(progress).toEqual([0.5833, 0.8333]);
    // What goes on after the batch: the chain's next step and the retried task are claimable again.
    expect((await claimAll(batched.kindOf.chain!, 10)).map((t) => t.step)).toEqual(["y"]);
    expect((await claimAll(batched.kindOf.retry!, 10)).map((t) => t.attempt)).toEqual([2]);
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
