import { Code } from "@connectrpc/connect";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CompensationRecord_Outcome as Outcome,
  type Operation,
  type OperationEvent,
  OperationEvent_CompensationChange_Phase as Phase,
  Operation_State,
  OperationService,
  type Task,
} from "../gen/anvil/operations/v1/operations_pb.js";
import { Workflow_State } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { Code as RpcCode } from "../gen/google/rpc/code_pb.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import { claim, eventsOf, type OperationClients, operationClients, runWorkflow, sequencesOf, type TestStep, until, watchWith, watchWithGrpcJs } from "./support/operations.js";
import { startServer, type TestServer } from "./support/server.js";
import { openEventStream } from "./support/sse.js";
import { openSocket } from "./support/websocket.js";

describe.each(databaseKinds)("sagas on %s", (kind) => {
  let server: TestServer;
  let c: OperationClients;
  let kinds = 0;
  /** Task kinds no other test uses (tests share one tenant's queue): the steps' and their compensations'. */
  const freshKinds = () => {
    kinds++;
    return { step: `saga-${kinds}`, undo: `undo-${kinds}` };
  };

  beforeAll(async () => {
    server = await startServer(kind, {
      env: { ANVIL_OPERATIONS_POLL_MS: "200", ANVIL_WATCH_KEEPALIVE_MS: "400", ANVIL_TASK_RETRY_BASE_MS: "20", ANVIL_TASK_MAX_ATTEMPTS: "3" },
    });
    c = await operationClients(server);
  });
  afterAll(() => server?.close());

  const succeed = (t: Task, result: Record<string, string | number> = { did: t.step }) =>
    c.workers.completeTask({ taskId: t.id, leaseToken: t.leaseToken, outcome: { case: "result", value: result } });
  const fail = (t: Task, retryable = false, message = "refused") =>
    c.workers.completeTask({ taskId: t.id, leaseToken: t.leaseToken, outcome: { case: "error", value: { code: RpcCode.FAILED_PRECONDITION, message, retryable } } });
  const claimAll = async (k: string, max = 10) =>
    (await c.workers.claimTask({ kinds: [k], workerId: "w", maxTasks: max, maxWait: { seconds: 5n, nanos: 0 } })).tasks;
  /** How many tasks of `k` are claimable now (claiming them). */
  const ready = async (k: string) => (await c.workers.claimTask({ kinds: [k], workerId: "w", maxTasks: 10 })).tasks.length;
  const get = async (id: string) => (await c.operations.getOperation({ id })).operation!;
  const records = (op: Operation) => op.compensations.map((r) => [r.step, Outcome[r.outcome]]);
  const compensationEvents = async (id: string): Promise<Array<[string, string]>> =>
    (await c.operations.listOperationEvents({ id, pageSize: 1000 })).events.flatMap((e: OperationEvent) =>
      e.payload.case === "compensation" ? [[e.step, Phase[e.payload.value.phase]] as [string, string]] : [],
    );

  /** a → b → c, each undoable; c fails for good. */
  const linear = (k: { step: string; undo: string }): TestStep[] =>
    ["a", "b", "c"].map((name, i) => ({
      name,
      kind: k.step,
      dependsOn: i === 0 ? [] : [["a", "b", "c"][i - 1]!],
      compensation: { kind: k.undo, config: { undoes: name } },
    }));

  it("a linear saga compensates its completed steps in reverse after a step fails for good, watched live gapless over gRPC, Connect, WebSocket and SSE", async () => {
    const k = freshKinds();
    const op = await runWorkflow(c, linear(k));
    const token = await server.token("acme-viewer");
    const watches = [watchWith(clientFor(OperationService, "connect-json", server.baseUrl, token), op.id), watchWithGrpcJs(server.port, token, op.id)];
    const auth = { authorization: `Bearer ${token}` };
    const socket = openSocket(`${server.baseUrl.replace(/^http/, "ws")}/ws/operations/${op.id}`, auth);
    const sse = await openEventStream(`${server.baseUrl}/v1/operations/${op.id}:watch`, auth);
    // Live before the run moves: the socket open, the RPC watches holding the operation (the SSE headers follow its first message).
    await socket.opened;
    await until(() => watches.every((w) => w.messages.length > 0), 30_000, "the RPC watches to start");

    await succeed((await claim(c, "w", { kinds: [k.step] }))!, { booked: "a-1" });
    await succeed((await claim(c, "w", { kinds: [k.step] }))!, { booked: "b-1" });
    const c3 = (await claim(c, "w", { kinds: [k.step] }))!;
    expect(c3.step).toBe("c");
    const failed = (await fail(c3, false, "card declined")).operation!;
    expect(failed.state).toBe(Operation_State.COMPENSATING);
    expect(failed.error).toMatchObject({ code: RpcCode.FAILED_PRECONDITION, message: "step c: card declined" });
    // Only the completed steps compensate (not c, which never completed), latest first.
    expect(records(failed)).toEqual([
      ["b", "PENDING"],
      ["a", "PENDING"],
    ]);

    // b's compensation first: a's waits for it.
    const undoB = await claimAll(k.undo);
    expect(undoB.map((t) => t.step)).toEqual(["b"]);
    expect(undoB[0]!.compensation).toBe(true);
    expect(undoB[0]!.input).toEqual({
      undoes: "b",
      saga: { step: "b", result: { booked: "b-1" }, error: { step: "c", code: RpcCode.FAILED_PRECONDITION, message: "card declined" } },
    });
    // Compensations cannot be cancelled away: the run is already failing.
    expect((await c.operations.cancelOperation({ id: op.id })).operation!.state).toBe(Operation_State.COMPENSATING);
    expect(await ready(k.undo)).toBe(0);
    expect((await succeed(undoB[0]!)).operation!.state).toBe(Operation_State.COMPENSATING);
    const undoA = await claimAll(k.undo);
    expect(undoA.map((t) => t.step)).toEqual(["a"]);
    const ended = (await succeed(undoA[0]!)).operation!;
    expect(ended.state).toBe(Operation_State.FAILED);
    expect(ended.error).toMatchObject({ message: "step c: card declined" });
    expect(records(ended)).toEqual([
      ["b", "SUCCEEDED"],
      ["a", "SUCCEEDED"],
    ]);
    expect(ended.cancelRequested).toBe(false);

    expect(await Promise.all(watches.map((w) => w.done))).toEqual([undefined, undefined]);
    const [connect, grpcJs] = watches.map((w) => eventsOf(w.messages));
    expect(grpcJs).toEqual(connect);
    const seqs = sequencesOf(watches[0]!.messages);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(await compensationEvents(op.id)).toEqual([
      ["", "STARTED"],
      ["b", "CLAIMED"],
      ["b", "COMPLETED"],
      ["a", "CLAIMED"],
      ["a", "COMPLETED"],
    ]);
    // The WebSocket and SSE views carry the same events, compensations included, without gaps.
    const [closed] = await Promise.all([socket.closed, sse.done]);
    expect(closed.code).toBe(1000);
    expect(socket.messages.map((m) => m.sequence)).toEqual(seqs);
    expect(socket.messages.filter((m) => m.type === "compensation").map((m) => [m.step, m.phase])).toEqual([
      ["", "started"],
      ["b", "claimed"],
      ["b", "completed"],
      ["a", "claimed"],
      ["a", "completed"],
    ]);
    expect(socket.messages.at(-1)).toMatchObject({ type: "completion", status: "failed" });
    expect(sse.events.filter((e) => e.id !== undefined).map((e) => Number(e.id))).toEqual(seqs);
    expect(sse.events.filter((e) => e.event === "compensation")).toHaveLength(5);
    const last = watches[0]!.messages.at(-1)!.item;
    expect(last.case === "event" && last.value.payload.case === "completion" && last.value.payload.value.state).toBe(Operation_State.FAILED);
  });

  it("a cancelled run compensates what completed once its running step stops, then ends CANCELLED", async () => {
    const k = freshKinds();
    const op = await runWorkflow(c, linear(k));
    await succeed((await claim(c, "w", { kinds: [k.step] }))!);
    const b = (await claim(c, "w", { kinds: [k.step] }))!;
    const cancelling = (await c.operations.cancelOperation({ id: op.id })).operation!;
    expect(cancelling.state).toBe(Operation_State.RUNNING);
    expect(cancelling.cancelRequested).toBe(true);
    // b's worker stops as told; b did not complete, so only a is undone.
    const stopped = await c.workers.completeTask({ taskId: b.id, leaseToken: b.leaseToken, outcome: { case: "error", value: { code: RpcCode.CANCELLED, message: "stopped", retryable: false } } });
    expect(stopped.operation!.state).toBe(Operation_State.COMPENSATING);
    const [undoA] = await claimAll(k.undo);
    expect(undoA!.step).toBe("a");
    expect(undoA!.input).toMatchObject({ saga: { step: "a", error: { step: "", code: RpcCode.CANCELLED } } });
    // The compensation's worker is not told to stop: the cancel is what it carries out.
    expect((await c.workers.reportProgress({ taskId: undoA!.id, leaseToken: undoA!.leaseToken, progress: 0.5 })).cancelRequested).toBe(false);
    const ended = (await succeed(undoA!)).operation!;
    expect(ended.state).toBe(Operation_State.CANCELLED);
    expect(ended.error).toMatchObject({ code: RpcCode.CANCELLED });
    expect(records(ended)).toEqual([["a", "SUCCEEDED"]]);
  });

  it("a run cancelled while queued, or failing before any undoable step completed, does not compensate", async () => {
    const k = freshKinds();
    const queued = await runWorkflow(c, linear(k));
    expect((await c.operations.cancelOperation({ id: queued.id })).operation!.state).toBe(Operation_State.CANCELLED);
    const op = await runWorkflow(c, linear(k));
    const ended = (await fail((await claim(c, "w", { kinds: [k.step] }))!)).operation!;
    expect(ended.state).toBe(Operation_State.FAILED);
    expect(ended.compensations).toEqual([]);
    expect(await ready(k.undo)).toBe(0);
    expect((await get(op.id)).state).toBe(Operation_State.FAILED);
  });

  /** r → (a ∥ b) → c, all undoable but c. */
  const diamond = (k: { step: string; undo: string }, undoA: TestStep["compensation"] = { kind: k.undo }): TestStep[] => [
    { name: "r", kind: k.step, compensation: { kind: k.undo } },
    { name: "a", kind: k.step, dependsOn: ["r"], compensation: undoA },
    { name: "b", kind: k.step, dependsOn: ["r"], compensation: { kind: k.undo } },
    { name: "c", kind: k.step, dependsOn: ["a", "b"] },
  ];
  const runToC = async (k: { step: string }, op: Operation) => {
    await succeed((await claim(c, "w", { kinds: [k.step] }))!);
    const parallel = await claimAll(k.step);
    expect(parallel.map((t) => t.step).sort()).toEqual(["a", "b"]);
    for (const t of parallel) await succeed(t);
    const last = (await claim(c, "w", { kinds: [k.step] }))!;
    expect(last.step).toBe("c");
    expect((await fail(last)).operation!.id).toBe(op.id);
  };

  it("steps that ran in parallel compensate in parallel, before the step they both depended on", async () => {
    const k = freshKinds();
    const op = await runWorkflow(c, diamond(k));
    await runToC(k, op);
    const first = await claimAll(k.undo);
    expect(first.map((t) => t.step).sort()).toEqual(["a", "b"]);
    await succeed(first[0]!);
    // r waits for both.
    expect(await ready(k.undo)).toBe(0);
    await succeed(first[1]!);
    const [undoR] = await claimAll(k.undo);
    expect(undoR!.step).toBe("r");
    const ended = (await succeed(undoR!)).operation!;
    expect(ended.state).toBe(Operation_State.FAILED);
    expect(ended.compensations.map((r) => r.step)).toEqual(["a", "b", "r"]);
    expect(ended.compensations.every((r) => r.outcome === Outcome.SUCCEEDED)).toBe(true);
  });

  it("a compensation that fails for good (after its own retries) ends the run COMPENSATION_FAILED, naming it, once the running ones finish", async () => {
    const k = freshKinds();
    const op = await runWorkflow(c, diamond(k, { kind: `${k.undo}-a`, maxAttempts: 2 }));
    await runToC(k, op);
    const [undoB] = await claimAll(k.undo);
    expect(undoB!.step).toBe("b");
    const first = (await claim(c, "w", { kinds: [`${k.undo}-a`] }))!;
    expect(first.maxAttempts).toBe(2);
    expect((await fail(first, true, "refund service down")).operation!.state).toBe(Operation_State.COMPENSATING);
    const second = (await claim(c, "w", { kinds: [`${k.undo}-a`] }))!;
    expect(second.attempt).toBe(2);
    // a's compensation fails for good while b's still runs: the run waits for b.
    expect((await fail(second, true, "refund service down")).operation!.state).toBe(Operation_State.COMPENSATING);
    const ended = (await succeed(undoB!)).operation!;
    expect(ended.state).toBe(Operation_State.COMPENSATION_FAILED);
    expect(ended.error).toMatchObject({ code: RpcCode.FAILED_PRECONDITION, message: "compensation of step a failed: refund service down; manual attention needed" });
    expect(records(ended)).toEqual([
      ["a", "FAILED"],
      ["b", "SUCCEEDED"],
      ["r", "SKIPPED"],
    ]);
    expect(ended.compensations[0]!.attempt).toBe(2);
    // r's compensation never ran, and never will.
    expect(await ready(k.undo)).toBe(0);
    const phases = await compensationEvents(op.id);
    expect(phases[0]).toEqual(["", "STARTED"]);
    expect(phases.slice(-2)).toEqual([
      ["a", "FAILED"],
      ["b", "COMPLETED"],
    ]);
    await expectCode(c.operations.cancelOperation({ id: op.id }), Code.FailedPrecondition);
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^anvil_operations_completions_total\{outcome="compensation_failed"\} [1-9]/m);
  });

  it("compensations are part of the workflow and its revisions; a compensation's kind and retry policy are checked", async () => {
    const step = { name: "s", kind: "demo", dependsOn: [], compensation: { kind: "undo", retryPolicy: { maxAttempts: 5 } } };
    const created = (await c.workflows.createWorkflow({ workflow: { displayName: "w", state: Workflow_State.ACTIVE, steps: [step] } })).workflow!;
    expect(created.steps[0]!.compensation).toMatchObject({ kind: "undo", retryPolicy: { maxAttempts: 5 } });
    const revisions = (await c.workflows.listWorkflowRevisions({ id: created.id })).revisions;
    expect(revisions[0]!.steps[0]!.compensation).toMatchObject({ kind: "undo", retryPolicy: { maxAttempts: 5 } });
    for (const compensation of [{ kind: "Not A Kind" }, { kind: "" }, { kind: "undo", retryPolicy: { maxAttempts: 101 } }]) {
      await expectCode(
        c.workflows.createWorkflow({ workflow: { displayName: "w", steps: [{ ...step, compensation }] } }),
        Code.InvalidArgument,
      );
    }
  });

  it("a RunWorkflow retried with its request_id replays an operation stored before sagas (no compensations) unchanged", async () => {
    const k = freshKinds();
    const requestId = crypto.randomUUID();
    const op = await runWorkflow(c, [{ name: "a", kind: k.step }], requestId);
    // The replay row as a gateway without sagas wrote it.
    await sql`update idempotency_keys set response = response - 'compensations' where tenant_id = 'acme' and request_id = ${requestId}`.execute(server.app.database.db);
    const workflowId = op.resource.replace("workflows/", "");
    const replayed = (await c.workflows.runWorkflow({ id: workflowId, requestId })).operation!;
    expect(replayed.id).toBe(op.id);
    expect(replayed.compensations).toEqual([]);
  });

  it("a compensation's lease that expires is retried like any task", async () => {
    const k = freshKinds();
    const op = await runWorkflow(c, [
      { name: "a", kind: k.step, compensation: { kind: k.undo } },
      { name: "b", kind: k.step, dependsOn: ["a"] },
    ]);
    await succeed((await claim(c, "w", { kinds: [k.step] }))!);
    await fail((await claim(c, "w", { kinds: [k.step] }))!);
    const lost = (await claim(c, "w1", { kinds: [k.undo], leaseMs: 1_000 }))!;
    await until(async () => {
      const again = await claim(c, "w2", { kinds: [k.undo], waitMs: 500 });
      if (again === undefined) return false;
      expect(again.attempt).toBe(2);
      await expectCode(succeed(lost), Code.FailedPrecondition);
      expect((await succeed(again)).operation!.state).toBe(Operation_State.FAILED);
      return true;
    }, 10_000, "the expired compensation to be claimable again");
    expect(records(await get(op.id))).toEqual([["a", "SUCCEEDED"]]);
  });
});
