import { Code, type ConnectError } from "@connectrpc/connect";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LogLine_Level, Operation_State, OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { Code as RpcCode } from "../gen/google/rpc/code_pb.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import {
  claim,
  eventsOf,
  type OperationClients,
  operationClients,
  runWorkflow,
  sequencesOf,
  until,
  watchWith,
  watchWithGrpcJs,
} from "./support/operations.js";
import { startServer, type TestServer } from "./support/server.js";

describe.each(databaseKinds)("operations on %s", (kind) => {
  let server: TestServer;
  let c: OperationClients;
  let kinds = 0;
  /** A task kind no other test uses: tests share one tenant's queue. */
  const freshKind = () => `demo-${++kinds}`;

  beforeAll(async () => {
    server = await startServer(kind, {
      env: {
        ANVIL_OPERATIONS_POLL_MS: "200",
        ANVIL_WATCH_KEEPALIVE_MS: "400",
        ANVIL_TASK_RETRY_BASE_MS: "50",
        ANVIL_TASK_MAX_ATTEMPTS: "3",
        ANVIL_MAX_STREAMS_PER_PRINCIPAL: "5",
        ANVIL_MAX_CLAIM_WAITS_PER_CREDENTIAL: "3",
      },
    });
    c = await operationClients(server);
  });
  afterAll(() => server?.close());

  it("start → claim → progress → complete, watched live over Connect (HTTP/1.1), gRPC-Web and grpc-js alike", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k, config: { seconds: 1 } }]);
    expect(op.state).toBe(Operation_State.QUEUED);
    const token = await server.token("acme-viewer");
    const watches = [
      watchWith(clientFor(OperationService, "connect-json", server.baseUrl, token), op.id),
      watchWith(clientFor(OperationService, "grpc-web", server.baseUrl, token), op.id),
      watchWithGrpcJs(server.port, token, op.id),
    ];
    await until(() => watches.every((w) => w.messages.length >= 2), 10_000, "every watch to see the operation and its first event");
    for (const w of watches) expect(w.messages[0]!.item.case).toBe("operation");

    const task = (await claim(c, "w1", { kinds: [k] }))!;
    expect(task.operationId).toBe(op.id);
    expect(task.step).toBe("only");
    expect(task.input).toEqual({ seconds: 1 });
    expect(task.attempt).toBe(1);
    const lease = { taskId: task.id, leaseToken: task.leaseToken };
    const first = await c.workers.reportProgress({ ...lease, progress: 0.5, stage: "cloning", logs: [{ level: LogLine_Level.INFO, message: "cloned" }] });
    expect(first.cancelRequested).toBe(false);
    await c.workers.reportProgress({ ...lease, progress: 1, message: "almost" });
    const done = await c.workers.completeTask({ ...lease, outcome: { case: "result", value: { answer: 42 } } });
    expect(done.operation!.state).toBe(Operation_State.SUCCEEDED);

    const ends = await Promise.all(watches.map((w) => w.done));
    expect(ends).toEqual([undefined, undefined, undefined]);
    const [json, web, grpcJs] = watches.map((w) => eventsOf(w.messages));
    expect(web).toEqual(json);
    expect(grpcJs).toEqual(json);
    const seqs = sequencesOf(watches[0]!.messages);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    const events = watches[0]!.messages.flatMap((m) => (m.item.case === "event" ? [m.item.value] : []));
    expect(events.map((e) => e.payload.case)).toEqual(["stage", "stage", "log", "stage", "log", "progress", "progress", "progress", "completion"]);
    const completion = events.at(-1)!.payload;
    expect(completion.case === "completion" && completion.value.state).toBe(Operation_State.SUCCEEDED);

    const final = (await c.operations.getOperation({ id: op.id })).operation!;
    expect(final).toMatchObject({ state: Operation_State.SUCCEEDED, progress: 1, stage: "succeeded", attempt: 1, result: { steps: { only: { answer: 42 } } } });
    expect(Number(final.lastSequence)).toBe(seqs.length);

    // The paged event list is the same history.
    const paged = [];
    let pageToken = "";
    do {
      const page = await c.operations.listOperationEvents({ id: op.id, pageSize: 4, pageToken });
      paged.push(...page.events);
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(paged.map((e) => Number(e.sequence))).toEqual(seqs);
  });

  it("resumes with after_sequence: nothing missed, nothing twice", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const first = watchWith(c.operations, op.id);
    const task = (await claim(c, "w1", { kinds: [k] }))!;
    const lease = { taskId: task.id, leaseToken: task.leaseToken };
    await c.workers.reportProgress({ ...lease, progress: 0.2 });
    await until(() => sequencesOf(first.messages).length >= 4, 10_000, "four events");
    first.cancel();
    await first.done;
    const seen = sequencesOf(first.messages);
    // Work goes on while the client is away.
    await c.workers.reportProgress({ ...lease, progress: 0.6, logs: [{ level: LogLine_Level.WARN, message: "slow" }] });
    await c.workers.completeTask({ ...lease, outcome: { case: "result", value: {} } });
    const resumed = watchWith(c.operations, op.id, seen.at(-1));
    expect(await resumed.done).toBeUndefined();
    const all = [...seen, ...sequencesOf(resumed.messages)];
    const total = Number((await c.operations.getOperation({ id: op.id })).operation!.lastSequence);
    expect(all).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    // A watch of a finished operation with nothing left sends only the operation.
    const finished = watchWith(c.operations, op.id, total);
    expect(await finished.done).toBeUndefined();
    expect(finished.messages.map((m) => m.item.case)).toEqual(["operation"]);
  });

  it("picks up an event whose notification was lost within a poll interval", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: freshKind() }]);
    const watch = watchWith(c.operations, op.id);
    await until(() => watch.messages.length >= 2, 5_000, "the watch to start");
    // Appended behind the gateway's back: no NOTIFY at all.
    const db = server.app.database.db;
    const seq = await sql<{ last_sequence: number }>`update operations set last_sequence = last_sequence + 1
      where tenant_id = 'acme' and id = ${op.id} returning last_sequence`.execute(db);
    const sequence = seq.rows[0]!.last_sequence;
    await sql`insert into operation_events (tenant_id, operation_id, sequence, step, type, payload)
      values ('acme', ${op.id}, ${sequence}, '', 'log', ${JSON.stringify({ level: "info", message: "silent" })})`.execute(db);
    const started = Date.now();
    await until(() => sequencesOf(watch.messages).includes(sequence), 5_000, "the silent event");
    expect(Date.now() - started).toBeLessThan(1_500);
    watch.cancel();
    await c.operations.cancelOperation({ id: op.id });
  });

  it("cancels a queued operation at once: its task is never claimed", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const watch = watchWith(c.operations, op.id);
    const cancelled = (await c.operations.cancelOperation({ id: op.id })).operation!;
    expect(cancelled.state).toBe(Operation_State.CANCELLED);
    expect(cancelled.error?.code).toBe(RpcCode.CANCELLED);
    expect(await claim(c, "w1", { kinds: [k], waitMs: 0 })).toBeUndefined();
    expect(await watch.done).toBeUndefined();
    const last = watch.messages.at(-1)!.item;
    expect(last.case === "event" && last.value.payload.case === "completion" && last.value.payload.value.state).toBe(Operation_State.CANCELLED);
    // Cancelling again changes nothing.
    const again = (await c.operations.cancelOperation({ id: op.id })).operation!;
    expect(again.lastSequence).toBe(cancelled.lastSequence);
  });

  it("cancels a running operation through its worker, which learns it from ReportProgress", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const task = (await claim(c, "w1", { kinds: [k] }))!;
    const lease = { taskId: task.id, leaseToken: task.leaseToken };
    const requested = (await c.operations.cancelOperation({ id: op.id })).operation!;
    expect(requested).toMatchObject({ state: Operation_State.RUNNING, cancelRequested: true });
    expect((await c.workers.reportProgress({ ...lease, progress: 0.3 })).cancelRequested).toBe(true);
    const ended = await c.workers.completeTask({ ...lease, outcome: { case: "error", value: { code: RpcCode.CANCELLED, message: "stopped", retryable: true } } });
    expect(ended.operation!.state).toBe(Operation_State.CANCELLED);
    // Succeeded operations cannot be cancelled.
    const other = await runWorkflow(c, [{ name: "only", kind: k }]);
    const t2 = (await claim(c, "w1", { kinds: [k] }))!;
    await c.workers.completeTask({ taskId: t2.id, leaseToken: t2.leaseToken, outcome: { case: "result", value: {} } });
    await expectCode(c.operations.cancelOperation({ id: other.id }), Code.FailedPrecondition);
  });

  it("retries a retryable error with backoff, then fails the operation after max attempts", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "flaky", kind: k }]);
    for (let attempt = 1; attempt <= 3; attempt++) {
      const task = (await claim(c, `w${attempt}`, { kinds: [k] }))!;
      expect(task.attempt).toBe(attempt);
      const res = await c.workers.completeTask({
        taskId: task.id,
        leaseToken: task.leaseToken,
        outcome: { case: "error", value: { code: RpcCode.UNAVAILABLE, message: "flaky backend", retryable: true } },
      });
      expect(res.operation!.state).toBe(attempt < 3 ? Operation_State.RUNNING : Operation_State.FAILED);
    }
    const failed = (await c.operations.getOperation({ id: op.id })).operation!;
    expect(failed.error).toMatchObject({ code: RpcCode.UNAVAILABLE, message: "step flaky: flaky backend" });
    expect(await claim(c, "w9", { kinds: [k], waitMs: 300 })).toBeUndefined();
    const events = (await c.operations.listOperationEvents({ id: op.id, pageSize: 100 })).events;
    const errors = events.flatMap((e) => (e.payload.case === "error" ? [e.payload.value] : []));
    expect(errors.map((e) => [e.attempt, e.willRetry])).toEqual([[1, true], [2, true], [3, false]]);
    // A non-retryable error fails at once.
    const other = await runWorkflow(c, [{ name: "only", kind: k }]);
    const t = (await claim(c, "w1", { kinds: [k] }))!;
    const res = await c.workers.completeTask({ taskId: t.id, leaseToken: t.leaseToken, outcome: { case: "error", value: { code: RpcCode.INVALID_ARGUMENT, message: "bad input", retryable: false } } });
    expect(res.operation).toMatchObject({ id: other.id, state: Operation_State.FAILED });
  });

  it("returns an expired lease to the queue; the old worker is fenced and changes nothing", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const lost = (await claim(c, "doomed", { kinds: [k], leaseMs: 1_000 }))!;
    await new Promise((r) => setTimeout(r, 1_300));
    const taken = (await claim(c, "rescuer", { kinds: [k] }))!;
    expect(taken.id).toBe(lost.id);
    expect(taken.attempt).toBe(2);
    expect(taken.leaseToken).not.toBe(lost.leaseToken);
    const before = (await c.operations.getOperation({ id: op.id })).operation!;
    const fenced = await expectCode(c.workers.reportProgress({ taskId: lost.id, leaseToken: lost.leaseToken, progress: 0.9 }), Code.FailedPrecondition);
    expect(fenced.message).toContain("not leased");
    await expectCode(c.workers.completeTask({ taskId: lost.id, leaseToken: lost.leaseToken, outcome: { case: "result", value: { late: true } } }), Code.FailedPrecondition);
    const after = (await c.operations.getOperation({ id: op.id })).operation!;
    expect(after).toEqual(before);
    await c.workers.completeTask({ taskId: taken.id, leaseToken: taken.leaseToken, outcome: { case: "result", value: { by: "rescuer" } } });
    const final = (await c.operations.getOperation({ id: op.id })).operation!;
    expect(final.result).toEqual({ steps: { only: { by: "rescuer" } } });
    // The fenced worker's completion after the end is refused too.
    await expectCode(c.workers.completeTask({ taskId: lost.id, leaseToken: lost.leaseToken, outcome: { case: "result", value: {} } }), Code.FailedPrecondition);
  });

  it("fails the operation once expired leases have used up the task's attempts", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    for (let attempt = 1; attempt <= 3; attempt++) {
      const task = (await claim(c, `dies-${attempt}`, { kinds: [k], leaseMs: 1_000 }))!;
      expect(task.attempt).toBe(attempt);
      await new Promise((r) => setTimeout(r, 1_150));
    }
    // The next claim finds the third lease expired with no attempt left: the operation fails.
    expect(await claim(c, "late", { kinds: [k], waitMs: 0 })).toBeUndefined();
    const failed = (await c.operations.getOperation({ id: op.id })).operation!;
    expect(failed).toMatchObject({ state: Operation_State.FAILED, attempt: 3 });
    expect(failed.error?.code).toBe(RpcCode.DEADLINE_EXCEEDED);
  });

  it("runs a DAG workflow in dependency order, two workers in parallel", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [
      { name: "a", kind: k },
      { name: "b", kind: k, dependsOn: ["a"] },
      { name: "c", kind: k, dependsOn: ["a"] },
      { name: "d", kind: k, dependsOn: ["b", "c"] },
    ]);
    const log: string[] = [];
    const work = async (worker: string) => {
      for (;;) {
        const task = await claim(c, worker, { kinds: [k], waitMs: 1_500 });
        if (!task) return;
        log.push(`start ${task.step}`);
        await new Promise((r) => setTimeout(r, 300));
        await c.workers.reportProgress({ taskId: task.id, leaseToken: task.leaseToken, progress: 0.5 });
        log.push(`end ${task.step}`);
        await c.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: { step: task.step } } });
      }
    };
    await Promise.all([work("left"), work("right")]);
    const at = (entry: string) => log.indexOf(entry);
    expect(at("end a")).toBeLessThan(at("start b"));
    expect(at("end a")).toBeLessThan(at("start c"));
    // b and c overlap: each started before the other ended.
    expect(at("start b")).toBeLessThan(at("end c"));
    expect(at("start c")).toBeLessThan(at("end b"));
    expect(at("end b")).toBeLessThan(at("start d"));
    expect(at("end c")).toBeLessThan(at("start d"));
    const final = (await c.operations.getOperation({ id: op.id })).operation!;
    expect(final.state).toBe(Operation_State.SUCCEEDED);
    expect(Object.keys(final.result!.steps as object).sort()).toEqual(["a", "b", "c", "d"]);
    const events = (await c.operations.listOperationEvents({ id: op.id, pageSize: 1000 })).events;
    const done = events.flatMap((e) => (e.payload.case === "progress" && e.payload.value.stepProgress === 1 ? [e.payload.value.progress] : []));
    // Progress counts finished steps (a running step with its own progress): never less than the share done.
    expect(done).toHaveLength(4);
    done.forEach((p, i) => expect(p).toBeGreaterThanOrEqual((i + 1) / 4));
    expect(done).toEqual([...done].sort((x, y) => x - y));
    expect(done.at(-1)).toBe(1);
  });

  it("starts nothing twice for a retried request_id, and lists operations by state, kind and resource", async () => {
    const k = freshKind();
    const requestId = crypto.randomUUID();
    const first = await runWorkflow(c, [{ name: "only", kind: k }], requestId);
    const replay = (await c.workflows.runWorkflow({ id: first.resource.split("/")[1]!, requestId })).operation!;
    expect(replay.id).toBe(first.id);
    const byResource = await c.operations.listOperations({ resource: first.resource });
    expect(byResource.operations.map((o) => o.id)).toEqual([first.id]);
    const queued = await c.operations.listOperations({ state: Operation_State.QUEUED, kind: "workflow.run", pageSize: 1000 });
    expect(queued.operations.map((o) => o.id)).toContain(first.id);
    expect(queued.operations.every((o) => o.state === Operation_State.QUEUED)).toBe(true);
    const page = await c.operations.listOperations({ pageSize: 1 });
    await expectCode(c.operations.listOperations({ pageSize: 1, pageToken: page.nextPageToken, kind: "other" }), Code.InvalidArgument);
    await c.operations.cancelOperation({ id: first.id });
  });

  it("caps concurrent streams per credential, frees them on disconnect, and keeps idle streams alive", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: freshKind() }]);
    const viewer = clientFor(OperationService, "connect-binary", server.baseUrl, await server.token("acme-viewer", { sub: "capped" }));
    const open = Array.from({ length: 5 }, () => watchWith(viewer, op.id));
    await until(() => open.every((w) => w.messages.length >= 1), 10_000, "five open streams");
    // The same key under another `sub`: the cap follows the credential, not a claim its holder picks.
    const sameKeyOtherSub = clientFor(OperationService, "connect-binary", server.baseUrl, await server.token("acme-viewer", { sub: "someone-else" }));
    const refused = watchWith(sameKeyOtherSub, op.id);
    const err = await refused.done;
    expect(err).toMatchObject({ code: Code.ResourceExhausted });
    // Another principal is not affected.
    const other = watchWith(c.operations, op.id);
    await until(() => other.messages.some((m) => m.item.case === "keepAlive"), 5_000, "a keep-alive on an idle stream");
    other.cancel();
    for (const w of open) w.cancel();
    await Promise.all(open.map((w) => w.done));
    // Slots come back once the server has seen the disconnects.
    let again = watchWith(viewer, op.id);
    await until(async () => {
      if (again.messages.length >= 1) return true;
      if ((await Promise.race([again.done, Promise.resolve("open")])) !== "open") again = watchWith(viewer, op.id);
      return false;
    }, 10_000, "a free slot after disconnects");
    again.cancel();
    await c.operations.cancelOperation({ id: op.id });
  });

  it("caps waiting claims per credential, apart from streams", async () => {
    const kind = freshKind();
    const waiting = Array.from({ length: 3 }, () => c.workers.claimTask({ kinds: [kind], workerId: "w", maxWait: { seconds: 4n } }));
    // Once the three are waiting, a fourth that would wait is refused (a probe
    // accepted before then waits 50 ms and gives its slot back).
    let refused: unknown;
    await until(async () => {
      refused = await c.workers.claimTask({ kinds: [kind], workerId: "w", maxWait: { nanos: 50_000_000 } }).then(() => undefined, (e: unknown) => e);
      return refused !== undefined;
    }, 4_000, "the fourth waiting claim to be refused");
    expect(Code[(refused as ConnectError).code]).toBe("ResourceExhausted");
    // A claim that does not wait needs no slot.
    await expect(c.workers.claimTask({ kinds: [kind], workerId: "w" })).resolves.toBeDefined();
    // Another credential with the worker role has slots of its own.
    const admin = clientFor((await import("../gen/anvil/apikeys/v1/apikeys_pb.js")).ApiKeyService, "connect-json", server.baseUrl, await server.token());
    const { secret } = await admin.createApiKey({ apiKey: { displayName: "fleet", roles: ["worker"] } });
    const fleet = clientFor((await import("../gen/anvil/operations/v1/operations_pb.js")).WorkerService, "connect-json", server.baseUrl, { "x-api-key": secret });
    await expect(fleet.claimTask({ kinds: [kind], workerId: "f", maxWait: { nanos: 100_000_000 } })).resolves.toBeDefined();
    await Promise.all(waiting);
    // Slots come back when the waits end.
    await expect(c.workers.claimTask({ kinds: [kind], workerId: "w", maxWait: { nanos: 100_000_000 } })).resolves.toBeDefined();
  });

  it("enforces permissions: viewers read but cannot cancel; only workers claim", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: freshKind() }]);
    const viewer = clientFor(OperationService, "connect-json", server.baseUrl, await server.token("acme-viewer"));
    expect((await viewer.getOperation({ id: op.id })).operation!.id).toBe(op.id);
    await expectCode(viewer.cancelOperation({ id: op.id }), Code.PermissionDenied);
    const editorAsWorker = clientFor((await import("../gen/anvil/operations/v1/operations_pb.js")).WorkerService, "connect-json", server.baseUrl, await server.token("acme-editor"));
    await expectCode(editorAsWorker.claimTask({ kinds: ["demo"], workerId: "x" }), Code.PermissionDenied);
    const workerReads = clientFor(OperationService, "connect-json", server.baseUrl, await server.token("acme-worker"));
    await expectCode(workerReads.getOperation({ id: op.id }), Code.PermissionDenied);
    const otherTenant = clientFor(OperationService, "connect-json", server.baseUrl, await server.token("globex-admin"));
    await expectCode(otherTenant.getOperation({ id: op.id }), Code.NotFound);
    await expectCode(c.operations.watchOperation({ id: "not-a-uuid" })[Symbol.asyncIterator]().next(), Code.InvalidArgument);
    await c.operations.cancelOperation({ id: op.id });
  });
});
