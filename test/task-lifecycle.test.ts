// The task state machine (src/operations/task-lifecycle.ts) called straight
// over a real database: claims, expired leases, progress reports,
// completions, retries with backoff, cancels and a saga's compensations, each
// checked by the rows and events it leaves and by what the queue's metrics
// counted after the commit. The end-to-end suites reach the same code through
// a gateway and a worker, where most of these rules only show as timing.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { Repositories } from "../src/db/repositories.js";
import { UnitOfWork } from "../src/db/unit-of-work.js";
import { OperationsMetrics } from "../src/metrics/operations-metrics.js";
import type { EventPayload, Operation } from "../src/operations/operation.js";
import type { QueueSettings } from "../src/operations/queue-settings.js";
import { OperationStarter } from "../src/operations/start-operation.js";
import { type ProgressReport, TaskLifecycle } from "../src/operations/task-lifecycle.js";
import type { Task, TaskCompensation } from "../src/operations/task.js";
import { FailedPreconditionError, NotFoundError } from "../src/shared/errors.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";

/** Backoffs long enough that a retried task is certainly not ready again during a test. */
const settings: QueueSettings = { maxAttempts: 4, retryBaseMs: 60_000, retryMaxMs: 150_000 };
const leaseMs = 30_000;

/** A step of an operation to start: its name, kind, dependencies and compensation. */
interface Step {
  readonly step: string;
  readonly kind?: string;
  readonly after?: readonly string[];
  readonly compensation?: TaskCompensation;
}

const quiet: ProgressReport = { stage: "", message: "", logs: [] };

describe.each(databaseKinds)("task lifecycle on %s", (kind) => {
  const suite = migratedDatabase(kind);

  /**
   * A tenant of its own (expired leases are swept per tenant, so no test sees
   * another's), a lifecycle whose metrics count only this test's commits,
   * and helpers over both.
   */
  function queue(queueSettings: QueueSettings = settings, counted = true) {
    const scope = { tenant: `t-${randomUUID()}` };
    const registry = new Registry();
    const lifecycle = new TaskLifecycle(queueSettings, counted ? new OperationsMetrics(registry) : undefined);
    const uow = new UnitOfWork(suite.db);
    const tx = <T>(work: (tx: Repositories) => Promise<T>) => uow.transact(scope, work);
    const q = {
      lifecycle,
      tx,
      /** Starts an operation of `steps` (all of kind "build" unless said otherwise). */
      start: (steps: readonly Step[], maxAttempts = queueSettings.maxAttempts) =>
        tx((t) =>
          new OperationStarter({ ...queueSettings, maxAttempts }).start(scope, t, {
            kind: "workflows.run",
            resource: "workflows/w1",
            tasks: steps.map((s) => ({ step: s.step, kind: s.kind ?? "build", input: { step: s.step }, dependsOn: s.after ?? [], compensation: s.compensation })),
          }),
        ),
      claim: (worker = "w1", limit = 1, kinds: readonly string[] = ["build"]) => tx((t) => lifecycle.claim(t, kinds, worker, leaseMs, limit)),
      /** Claims exactly one task and returns it. */
      claimOne: async (worker = "w1", kinds: readonly string[] = ["build"]) => {
        const claimed = await q.claim(worker, 1, kinds);
        expect(claimed).toHaveLength(1);
        return claimed[0]!.task;
      },
      succeed: (task: Task, result: Record<string, string> = { did: task.step }) => tx((t) => lifecycle.complete(t, task.id, task.leaseToken!, { result })),
      fail: (task: Task, retryable: boolean, message = "boom", code = 9) =>
        tx((t) => lifecycle.complete(t, task.id, task.leaseToken!, { error: { code, message, retryable } })),
      report: (task: Task, report: Partial<ProgressReport>) => tx((t) => lifecycle.report(t, task.id, task.leaseToken!, { ...quiet, ...report })),
      cancel: (id: string) => tx((t) => lifecycle.cancel(t, id)),
      operation: (id: string) => tx((t) => t.operations.get(id)),
      tasks: async (id: string) => new Map((await tx((t) => t.tasks.ofOperation(id))).map((task) => [task.step, task])),
      task: (id: string) => tx((t) => t.tasks.find(id)),
      payloads: async (id: string): Promise<EventPayload[]> => (await tx((t) => t.operations.events(id, 0, 1_000))).map((e) => e.payload),
      events: (id: string) => tx((t) => t.operations.events(id, 0, 1_000)),
      /** Makes the lease of `task` expire a second ago. */
      expire: (task: Task) => sql`update tasks set lease_expires_at = now() - interval '1 second' where id = ${task.id}`.execute(suite.db),
      /** Makes `task` ready now (its backoff over). */
      due: (task: Task) => sql`update tasks set run_after = now() where id = ${task.id}`.execute(suite.db),
      /** Milliseconds from now until `task` is ready again. */
      readyIn: async (task: Task) => {
        const { rows } = await sql<{ ms: number }>`select (extract(epoch from run_after - now()) * 1000)::float8 as ms from tasks where id = ${task.id}`.execute(suite.db);
        return rows[0]!.ms;
      },
      /** What a counter of the queue's metrics counted for `labels`. */
      counted: async (name: string, labels: Record<string, string>) => {
        const metric = registry.getSingleMetric(name);
        if (metric === undefined) throw new Error(`no metric ${name}`);
        const found = (await metric.get()).values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value));
        return found?.value ?? 0;
      },
    };
    return q;
  }

  const logs = (payloads: EventPayload[]) => payloads.flatMap((p) => (p.type === "log" ? [p.message] : []));
  const ofType = <T extends EventPayload["type"]>(payloads: EventPayload[], type: T) =>
    payloads.filter((p): p is Extract<EventPayload, { type: T }> => p.type === type);

  /**
   * Completes `task` in a transaction that stays open (holding its
   * operation's lock) until `release()`, which commits it.
   */
  async function holdingCompletion(q: ReturnType<typeof queue>, task: Task): Promise<{ release: () => Promise<void> }> {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let completed!: () => void;
    const held = new Promise<void>((resolve) => (completed = resolve));
    const completion = q.tx(async (t) => {
      await q.lifecycle.complete(t, task.id, task.leaseToken!, { result: {} });
      completed();
      await gate;
    });
    await Promise.race([held, completion]);
    return {
      release: async () => {
        open();
        await completion;
      },
    };
  }

  /** Until some session of this database waits on a lock, or `settled()` says the call under test already answered. */
  async function untilWaitingOnALock(settled: () => boolean): Promise<void> {
    const waiting = async () =>
      (await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`.execute(suite.db)).rows[0]!.n;
    while (!settled() && (await waiting()) === 0) await new Promise((r) => setTimeout(r, 10));
  }

  describe("claims", () => {
    it("leases ready tasks up to the limit, with their operation's resource, records the claim and counts it once committed", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }, { step: "b" }, { step: "c" }, { step: "later", kind: "other" }]);
      const claimed = await q.claim("w1", 2);
      expect(claimed.map((c) => c.resource)).toEqual(["workflows/w1", "workflows/w1"]);
      expect(claimed.map((c) => [c.task.state, c.task.workerId, c.task.attempt])).toEqual([
        ["leased", "w1", 1],
        ["leased", "w1", 1],
      ]);
      expect(await q.claim("w2")).toHaveLength(1);
      expect(await q.claim("w2")).toEqual([]);

      const operation = await q.operation(op.id);
      expect([operation.state, operation.stage, operation.attempt]).toEqual(["running", "running", 3]);
      const payloads = await q.payloads(op.id);
      expect(logs(payloads).filter((m) => m.startsWith("claimed"))).toEqual([
        "claimed by w1 (attempt 1 of 4)",
        "claimed by w1 (attempt 1 of 4)",
        "claimed by w2 (attempt 1 of 4)",
      ]);
      const claimedEvents = (await q.events(op.id)).filter((e) => e.payload.type === "log");
      expect(claimedEvents.map((e) => e.step).sort()).toEqual(["a", "b", "c"]);
      expect(claimedEvents.every((e) => e.payload.type === "log" && e.payload.level === "info")).toBe(true);
      // A step without a compensation records no compensation event when claimed.
      expect(ofType(payloads, "compensation")).toEqual([]);
      expect(await q.counted("anvil_operations_task_claims_total", { kind: "build" })).toBe(3);
    });

    it("counts nothing for a claim that rolls back", async () => {
      const q = queue();
      await q.start([{ step: "a" }]);
      await expect(
        q.tx(async (t) => {
          expect(await q.lifecycle.claim(t, ["build"], "w1", leaseMs)).toHaveLength(1);
          throw new Error("rolled back");
        }),
      ).rejects.toThrow("rolled back");
      expect(await q.counted("anvil_operations_task_claims_total", { kind: "build" })).toBe(0);
      expect(await q.claim()).toHaveLength(1);
      expect(await q.counted("anvil_operations_task_claims_total", { kind: "build" })).toBe(1);
    });

    it("gives expired leases back when it finds nothing ready, and leaves them to the sweeper when it finds work", async () => {
      const q = queue();
      const first = await q.start([{ step: "a" }]);
      const stale = await q.claimOne("w1");
      await q.expire(stale);
      const second = await q.start([{ step: "b" }]);
      // Work found: the expired lease stays as it is.
      expect((await q.claimOne("w2")).operationId).toBe(second.id);
      expect((await q.task(stale.id)).state).toBe("leased");
      expect(await q.counted("anvil_operations_lease_expiries_total", { kind: "build" })).toBe(0);
      // Nothing ready: the claim returns the expired lease to the queue, behind its backoff.
      expect(await q.claim("w3")).toEqual([]);
      const requeued = await q.task(stale.id);
      expect([requeued.state, requeued.attempt, requeued.leaseToken]).toEqual(["queued", 1, null]);
      expect(await q.readyIn(stale)).toBeGreaterThan(settings.retryBaseMs - 10_000);
      const [error] = ofType(await q.payloads(first.id), "error");
      expect(error).toMatchObject({ code: 4, message: "lease of w1 expired", retryable: true, attempt: 1, willRetry: true });
      expect((await q.operation(first.id)).message).toBe("lease of w1 expired");
      expect(await q.counted("anvil_operations_lease_expiries_total", { kind: "build" })).toBe(1);
      expect(await q.counted("anvil_operations_task_retries_total", { kind: "build" })).toBe(1);
    });

    it("says whether anything is claimable and which operation the oldest ready task belongs to, and claims from one operation only", async () => {
      const q = queue();
      expect(await q.tx((t) => q.lifecycle.claimable(t, ["build"]))).toBe(false);
      expect(await q.tx((t) => q.lifecycle.readyBehindHeldOperation(t, ["build"]))).toBeUndefined();
      const older = await q.start([{ step: "a" }]);
      const newer = await q.start([{ step: "x" }, { step: "y" }, { step: "z" }]);
      await sql`update tasks set run_after = now() - interval '1 minute' where operation_id = ${older.id}`.execute(suite.db);
      expect(await q.tx((t) => q.lifecycle.claimable(t, ["build"]))).toBe(true);
      expect(await q.tx((t) => q.lifecycle.claimable(t, ["other"]))).toBe(false);
      expect(await q.tx((t) => q.lifecycle.readyBehindHeldOperation(t, ["build"]))).toBe(older.id);
      const fromNewer = await q.tx((t) => q.lifecycle.claimFrom(t, newer.id, ["build"], "w1", leaseMs, 2));
      expect(fromNewer.map((c) => [c.task.operationId, c.task.state, c.resource])).toEqual([
        [newer.id, "leased", "workflows/w1"],
        [newer.id, "leased", "workflows/w1"],
      ]);
      expect(await q.tx((t) => q.lifecycle.claimFrom(t, newer.id, ["build"], "w1", leaseMs))).toHaveLength(1);
      expect(logs(await q.payloads(newer.id)).filter((m) => m.startsWith("claimed"))).toHaveLength(3);
      expect((await q.operation(newer.id)).attempt).toBe(3);
      expect(await q.counted("anvil_operations_task_claims_total", { kind: "build" })).toBe(3);
      expect((await q.tasks(older.id)).get("a")!.state).toBe("queued");
    });
  });

  it.skipIf(kind !== "postgres")("(PostgreSQL only) a claim's second try waits for the completion holding the operation, then leases the task it released", async () => {
    const q = queue();
    const op = await q.start([{ step: "a" }, { step: "b", after: ["a"] }]);
    const a = await q.claimOne();
    // a's completion releases b, and holds the operation until released.
    const completion = await holdingCompletion(q, a);
    let settled = false;
    const second = q.tx((t) => q.lifecycle.claimFrom(t, op.id, ["build"], "w2", leaseMs)).finally(() => (settled = true));
    await untilWaitingOnALock(() => settled);
    expect(settled, "the second try answered while the completion held the operation").toBe(false);
    await completion.release();
    const claimed = await second;
    expect(claimed.map((c) => [c.task.step, c.task.workerId])).toEqual([["b", "w2"]]);
  });

  it.skipIf(kind !== "postgres")("(PostgreSQL only) a cancel waits for the completion holding the operation, and refuses once it succeeded", async () => {
    const q = queue();
    const op = await q.start([{ step: "a" }]);
    const a = await q.claimOne();
    const completion = await holdingCompletion(q, a);
    let settled = false;
    const cancel = q.cancel(op.id).then(
      (operation) => operation,
      (err: unknown) => err,
    );
    void cancel.finally(() => (settled = true));
    await untilWaitingOnALock(() => settled);
    expect(settled, "the cancel answered while the completion held the operation").toBe(false);
    await completion.release();
    const refused = await cancel;
    expect(refused).toBeInstanceOf(FailedPreconditionError);
    expect((refused as FailedPreconditionError).message).toBe(`operation ${op.id} already succeeded`);
    expect((await q.operation(op.id)).state).toBe("succeeded");
  });

  describe("expired leases", () => {
    it("handles every expired lease of the tenant and says how many", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }, { step: "b" }]);
      const [a, b] = (await q.claim("w1", 2)).map((c) => c.task);
      await q.expire(a!);
      expect(await q.tx((t) => q.lifecycle.recoverExpired(t))).toBe(1);
      expect(await q.tx((t) => q.lifecycle.recoverExpired(t))).toBe(0);
      expect((await q.task(b!.id)).state).toBe("leased");
      expect((await q.tasks(op.id)).get(a!.step)!.state).toBe("queued");
    });

    it("names no worker that had no id", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }]);
      await q.expire(await q.claimOne(""));
      await q.tx((t) => q.lifecycle.recoverExpired(t));
      expect(ofType(await q.payloads(op.id), "error")[0]?.message).toBe("lease of its worker expired");
    });

    it("fails the operation when the expired lease was the last attempt", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }], 1);
      await q.expire(await q.claimOne("w1"));
      await q.tx((t) => q.lifecycle.recoverExpired(t));
      const operation = await q.operation(op.id);
      expect([operation.state, operation.error]).toEqual(["failed", { code: 4, message: "step a: lease of w1 expired" }]);
      expect(ofType(await q.payloads(op.id), "error")[0]).toMatchObject({ willRetry: false, retryTime: null });
      expect(await q.counted("anvil_operations_completions_total", { outcome: "failed" })).toBe(1);
      expect(await q.counted("anvil_operations_task_retries_total", { kind: "build" })).toBe(0);
    });

    it("cancels the task of an operation whose cancel waited for it, and ends the operation cancelled", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }]);
      const task = await q.claimOne();
      expect((await q.cancel(op.id)).cancelRequested).toBe(true);
      await q.expire(task);
      expect(await q.tx((t) => q.lifecycle.recoverExpired(t))).toBe(1);
      expect(await q.task(task.id)).toMatchObject({ state: "done", outcome: "cancelled" });
      expect((await q.operation(op.id)).state).toBe("cancelled");
      expect(ofType(await q.payloads(op.id), "error")).toEqual([]);
      expect(await q.counted("anvil_operations_lease_expiries_total", { kind: "build" })).toBe(1);
    });
  });

  describe("progress reports", () => {
    it("records a new stage once, log lines, and progress over the operation's tasks", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }, { step: "b" }]);
      const task = await q.claimOne();
      const before = (await q.operation(op.id)).lastSequence;
      await q.report(task, { stage: "compile", progress: 0.5, message: "halfway", logs: [{ level: "warn", message: "slow disk" }] });
      const operation = await q.operation(op.id);
      // One of two tasks half done: a quarter of the operation.
      expect([operation.stage, operation.progress, operation.message]).toEqual(["compile", 0.25, "halfway"]);
      const added = (await q.events(op.id)).filter((e) => e.sequence > before);
      expect(added.map((e) => [e.step, e.payload])).toEqual([
        ["a", { type: "stage", stage: "compile" }],
        ["a", { type: "log", level: "warn", message: "slow disk" }],
        ["a", { type: "progress", progress: 0.25, stepProgress: 0.5, message: "halfway" }],
      ]);
      expect((await q.task(task.id)).progress).toBe(0.5);

      // The same stage again is no new stage; a message alone reports the progress as it stands.
      await q.report(task, { stage: "compile", message: "still going" });
      const again = (await q.events(op.id)).filter((e) => e.sequence > operation.lastSequence);
      expect(again.map((e) => e.payload)).toEqual([{ type: "progress", progress: 0.25, stepProgress: 0.5, message: "still going" }]);
      expect(await q.operation(op.id)).toMatchObject({ stage: "compile", message: "still going", progress: 0.25 });

      // An empty stage or message leaves the operation's as they are.
      await q.report(task, { progress: 0.8 });
      expect(await q.operation(op.id)).toMatchObject({ stage: "compile", message: "still going", progress: 0.4 });
      await q.report(task, { message: "nearly" });
      expect(await q.operation(op.id)).toMatchObject({ stage: "compile", message: "nearly", progress: 0.4 });
    });

    it("takes back a retried attempt's progress: the operation's progress and the next report start from what is left", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }, { step: "b" }]);
      const [a, b] = [await q.claimOne(), await q.claimOne()];
      await q.report(a, { progress: 0.5 });
      await q.report(b, { progress: 0.3 });
      expect((await q.operation(op.id)).progress).toBe(0.4);
      expect((await q.fail(a, true)).progress).toBe(0.15);
      expect((await q.operation(op.id)).progress).toBe(0.15);
      const before = (await q.operation(op.id)).lastSequence;
      await q.report(b, { message: "still going" });
      const added = (await q.events(op.id)).filter((e) => e.sequence > before);
      expect(added.map((e) => e.payload)).toEqual([{ type: "progress", progress: 0.15, stepProgress: 0.3, message: "still going" }]);
      // A lease that expires is a failed attempt too.
      await q.expire(b);
      expect(await q.claim()).toEqual([]);
      expect((await q.operation(op.id)).progress).toBe(0);
    });

    it("changes nothing of the operation for a report that says nothing, but extends the lease", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }]);
      const task = await q.claimOne();
      await q.report(task, { stage: "compile", message: "working" });
      await sql`update tasks set lease_expires_at = now() + interval '1 second' where id = ${task.id}`.execute(suite.db);
      const before = await q.operation(op.id);
      const answer = await q.report(task, {});
      expect(answer.cancelRequested).toBe(false);
      expect(answer.leaseExpiresAt.getTime() - Date.now()).toBeGreaterThan(leaseMs - 10_000);
      const after = await q.operation(op.id);
      expect(after).toEqual(before);
    });

    it("tells the worker once the operation's cancel was requested", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }]);
      const task = await q.claimOne();
      expect((await q.report(task, {})).cancelRequested).toBe(false);
      await q.cancel(op.id);
      expect((await q.report(task, {})).cancelRequested).toBe(true);
    });

    it("refuses a lease that is not the task's current one, and a task that does not exist", async () => {
      const q = queue();
      await q.start([{ step: "a" }]);
      const task = await q.claimOne();
      const refused = await q.report({ ...task, leaseToken: randomUUID() }, {}).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(FailedPreconditionError);
      expect((refused as FailedPreconditionError).message).toBe(`task ${task.id} is not leased with this token`);
      const missing = randomUUID();
      const notFound = await q.report({ ...task, id: missing }, {}).catch((e: unknown) => e);
      expect(notFound).toBeInstanceOf(NotFoundError);
      expect((notFound as NotFoundError).message).toBe(`task ${missing} not found`);
      // Another tenant's task is no task of this one's.
      const other = queue();
      await expect(other.report(task, {})).rejects.toBeInstanceOf(NotFoundError);
      const held = await q.tx((t) => q.lifecycle.holding(t, task.id, task.leaseToken!));
      expect([held.task.id, held.operation.id]).toEqual([task.id, task.operationId]);
      await expect(q.tx((t) => q.lifecycle.holding(t, task.id, randomUUID()))).rejects.toBeInstanceOf(FailedPreconditionError);
    });
  });

  describe("completions", () => {
    it("succeeds a step, queues the steps waiting for it, and ends the operation with every step's result once all succeeded", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }, { step: "b", after: ["a"] }]);
      const a = await q.claimOne();
      const half = await q.succeed(a);
      expect([half.state, half.progress, half.message]).toEqual(["running", 0.5, "step a succeeded"]);
      expect((await q.tasks(op.id)).get("b")!.state).toBe("queued");
      expect(await q.counted("anvil_operations_completions_total", { outcome: "succeeded" })).toBe(0);
      const done = await q.succeed(await q.claimOne());
      expect([done.state, done.progress, done.result]).toEqual(["succeeded", 1, { steps: { a: { did: "a" }, b: { did: "b" } } }]);
      expect(ofType(await q.payloads(op.id), "completion")).toEqual([{ type: "completion", state: "succeeded", result: done.result, error: null }]);
      expect(await q.counted("anvil_operations_completions_total", { outcome: "succeeded" })).toBe(1);
    });

    it("retries a retryable failure after a backoff that doubles per attempt up to the cap, then fails the operation", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }]);
      const backoffs = [60_000, 120_000, 150_000];
      for (const [i, backoff] of backoffs.entries()) {
        const task = await q.claimOne();
        expect(task.attempt).toBe(i + 1);
        const failedFrom = Date.now();
        const operation = await q.fail(task, true, `flaky ${i + 1}`);
        const failedBy = Date.now();
        expect([operation.state, operation.message]).toEqual(["running", `flaky ${i + 1}`]);
        expect(await q.task(task.id)).toMatchObject({ state: "queued", leaseToken: null });
        // Not ready before its backoff: the database's clock says when.
        expect(await q.readyIn(task)).toBeGreaterThan(backoff - 10_000);
        expect(await q.readyIn(task)).toBeLessThanOrEqual(backoff);
        expect(await q.claim()).toEqual([]);
        const error = ofType(await q.payloads(op.id), "error")[i]!;
        expect(error).toMatchObject({ code: 9, message: `flaky ${i + 1}`, retryable: true, attempt: i + 1, willRetry: true });
        // The event says when the retry is due: this machine's clock, from the time of the failure.
        const due = Date.parse(error.retryTime!);
        expect(due).toBeGreaterThanOrEqual(failedFrom + backoff);
        expect(due).toBeLessThanOrEqual(failedBy + backoff);
        await q.due(task);
      }
      expect(await q.counted("anvil_operations_task_retries_total", { kind: "build" })).toBe(3);
      const last = await q.claimOne();
      expect(last.attempt).toBe(4);
      const failed = await q.fail(last, true, "flaky 4");
      expect([failed.state, failed.stage, failed.message, failed.error]).toEqual(["failed", "failed", "step a: flaky 4", { code: 9, message: "step a: flaky 4" }]);
      expect(failed.endTime).not.toBeNull();
      expect(ofType(await q.payloads(op.id), "error")[3]).toMatchObject({ attempt: 4, willRetry: false, retryTime: null });
      expect(await q.task(last.id)).toMatchObject({ state: "done", outcome: "failed" });
      expect(await q.counted("anvil_operations_task_retries_total", { kind: "build" })).toBe(3);
      expect(await q.counted("anvil_operations_completions_total", { outcome: "failed" })).toBe(1);
    });

    it("fails the operation at once on a failure that is not retryable, ending its other tasks, leased ones too", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }, { step: "b" }, { step: "c", after: ["a"] }]);
      const claimed = (await q.claim("w1", 2)).map((c) => c.task);
      const a = claimed.find((t) => t.step === "a");
      const b = claimed.find((t) => t.step === "b");
      const failed = await q.fail(a!, false, "refused", 7);
      expect(failed.state).toBe("failed");
      expect(failed.error).toEqual({ code: 7, message: "step a: refused" });
      const tasks = await q.tasks(op.id);
      expect([...tasks.values()].map((t) => [t.step, t.state, t.outcome]).sort()).toEqual([
        ["a", "done", "failed"],
        ["b", "done", "cancelled"],
        ["c", "done", "cancelled"],
      ]);
      const payloads = await q.payloads(op.id);
      expect(ofType(payloads, "error")).toEqual([{ type: "error", code: 7, message: "refused", retryable: false, attempt: 1, willRetry: false, retryTime: null }]);
      expect(ofType(payloads, "completion")).toEqual([{ type: "completion", state: "failed", result: null, error: { code: 7, message: "step a: refused" } }]);
      expect((await q.events(op.id)).filter((e) => e.payload.type === "error" || e.payload.type === "completion").map((e) => [e.payload.type, e.step])).toEqual([
        ["error", "a"],
        ["completion", ""],
      ]);
      // The worker still holding b has lost its lease.
      await expect(q.succeed(b!)).rejects.toBeInstanceOf(FailedPreconditionError);
    });

    it("names no step in the failure of a single-task operation", async () => {
      const q = queue();
      await q.start([{ step: "" }]);
      const failed = await q.fail(await q.claimOne(), false, "refused");
      expect(failed.error).toEqual({ code: 9, message: "refused" });
      expect(failed.message).toBe("refused");
    });
  });

  describe("cancels", () => {
    it("cancels an operation nobody works on at once", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }, { step: "b", after: ["a"] }]);
      const cancelled = await q.cancel(op.id);
      expect([cancelled.state, cancelled.stage, cancelled.message, cancelled.error]).toEqual(["cancelled", "cancelled", "cancelled", { code: 1, message: "cancelled" }]);
      expect(cancelled.endTime).not.toBeNull();
      expect([...(await q.tasks(op.id)).values()].map((t) => t.outcome)).toEqual(["cancelled", "cancelled"]);
      expect(ofType(await q.payloads(op.id), "stage").map((p) => p.stage)).toEqual(["queued", "cancelling"]);
      expect(ofType(await q.payloads(op.id), "completion")).toEqual([{ type: "completion", state: "cancelled", result: null, error: { code: 1, message: "cancelled" } }]);
      // Both about the whole operation, no step.
      expect((await q.events(op.id)).filter((e) => e.payload.type !== "stage" || e.payload.stage !== "queued").map((e) => [e.payload.type, e.step])).toEqual([
        ["stage", ""],
        ["completion", ""],
      ]);
      expect(await q.counted("anvil_operations_completions_total", { outcome: "cancelled" })).toBe(1);
      // Cancelling it again changes nothing.
      expect(await q.cancel(op.id)).toEqual(await q.operation(op.id));
      expect(ofType(await q.payloads(op.id), "completion")).toHaveLength(1);
    });

    it("marks an operation whose task a worker holds, ends its waiting tasks, and ends it once the worker stops", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }, { step: "b" }, { step: "c", after: ["a"] }]);
      const held = await q.claimOne();
      const marked = await q.cancel(op.id);
      expect([marked.state, marked.stage, marked.cancelRequested]).toEqual(["running", "cancelling", true]);
      const tasks = await q.tasks(op.id);
      expect([...tasks.values()].map((t) => [t.step, t.state]).sort()).toEqual([
        ["a", "leased"],
        ["b", "done"],
        ["c", "done"],
      ]);
      // A second cancel while it waits changes nothing.
      const again = await q.cancel(op.id);
      expect(again).toEqual(await q.operation(op.id));
      expect(ofType(await q.payloads(op.id), "stage").map((p) => p.stage)).toEqual(["queued", "running", "cancelling"]);
      // The worker's failure ends it cancelled, not failed, and is not retried.
      const ended = await q.fail(held, true);
      expect([ended.state, ended.error]).toEqual(["cancelled", { code: 1, message: "cancelled" }]);
      expect(await q.task(held.id)).toMatchObject({ state: "done", outcome: "cancelled" });
      expect(await q.counted("anvil_operations_task_retries_total", { kind: "build" })).toBe(0);
    });

    it("ends a cancelled operation once the last of its held tasks completes, even with a result", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }, { step: "b" }]);
      const [a, b] = (await q.claim("w1", 2)).map((c) => c.task);
      await q.cancel(op.id);
      const waiting = await q.succeed(a!);
      expect([waiting.state, waiting.cancelRequested]).toEqual(["running", true]);
      expect(await q.task(a!.id)).toMatchObject({ state: "done", outcome: "succeeded" });
      const ended = await q.succeed(b!);
      expect(ended.state).toBe("cancelled");
      expect(ended.result).toBeNull();
    });

    it("refuses to cancel an operation that already ended", async () => {
      const q = queue();
      const op = await q.start([{ step: "a" }]);
      await q.succeed(await q.claimOne());
      const refused = await q.cancel(op.id).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(FailedPreconditionError);
      expect((refused as FailedPreconditionError).message).toBe(`operation ${op.id} already succeeded`);
      expect((refused as FailedPreconditionError).violations).toEqual([
        { type: "OPERATION_DONE", subject: `operations/${op.id}`, description: "the operation already succeeded; it cannot be cancelled" },
      ]);
    });
  });

  it("runs every step without anyone counting: no queue events to tell", async () => {
    const q = queue(settings, false);
    await q.start([{ step: "a" }]);
    let task = await q.claimOne();
    expect((await q.fail(task, true)).state).toBe("running");
    await q.due(task);
    task = await q.claimOne();
    await q.expire(task);
    expect(await q.claim()).toEqual([]);
    await q.due(task);
    expect((await q.succeed(await q.claimOne())).state).toBe("succeeded");
    await q.start([{ step: "b" }], 1);
    expect((await q.fail(await q.claimOne(), false)).state).toBe("failed");
    const cancelled = await q.start([{ step: "c" }]);
    expect((await q.cancel(cancelled.id)).state).toBe("cancelled");
  });

  describe("sagas", () => {
    const undo = (kind = "undo"): TaskCompensation => ({ kind, config: { how: "revert" }, maxAttempts: 0 });

    /** a (undoable) succeeded, b failed for good: the operation compensates a. */
    async function compensating(q: ReturnType<typeof queue>) {
      const op = await q.start([{ step: "a", compensation: undo() }, { step: "b", after: ["a"] }]);
      await q.succeed(await q.claimOne());
      const failed = await q.fail(await q.claimOne(), false, "refused");
      expect(failed.state).toBe("compensating");
      return op;
    }

    it("compensates the succeeded steps when a step fails for good, and fails the operation once they are undone", async () => {
      const q = queue();
      const op = await compensating(q);
      const payloads = await q.payloads(op.id);
      expect(ofType(payloads, "completion")).toEqual([]);
      expect(await q.counted("anvil_operations_completions_total", { outcome: "failed" })).toBe(0);
      const compensation = await q.claimOne("w9", ["undo"]);
      expect(compensation).toMatchObject({ step: "a", compensates: expect.any(String) });
      expect(ofType(await q.payloads(op.id), "compensation").map((p) => [p.phase, p.kind, p.workerId])).toEqual([
        ["started", "", ""],
        ["claimed", "undo", "w9"],
      ]);
      // Progress reports of a compensation: the operation is compensating, not cancelled.
      expect((await q.report(compensation, {})).cancelRequested).toBe(false);
      const ended = await q.succeed(compensation, { undone: "a" });
      expect([ended.state, ended.error]).toEqual(["failed", { code: 9, message: "step b: refused" }]);
      expect(ended.compensations.map((r) => [r.step, r.outcome])).toEqual([["a", "succeeded"]]);
      expect(await q.counted("anvil_operations_completions_total", { outcome: "failed" })).toBe(1);
    });

    it("retries a compensation's retryable failure and ends the operation needing attention when it fails for good", async () => {
      const q = queue();
      const op = await compensating(q);
      const first = await q.claimOne("w9", ["undo"]);
      const retried = await q.fail(first, true, "busy");
      expect(retried.state).toBe("compensating");
      expect(await q.task(first.id)).toMatchObject({ state: "queued" });
      expect(await q.counted("anvil_operations_task_retries_total", { kind: "undo" })).toBe(1);
      await q.due(first);
      const second = await q.claimOne("w9", ["undo"]);
      const broken = await q.fail(second, false, "gone");
      expect(broken.state).toBe("compensation_failed");
      expect(broken.error).toEqual({ code: 9, message: "compensation of step a failed: gone; manual attention needed" });
      expect(ofType(await q.payloads(op.id), "error").map((p) => [p.message, p.willRetry])).toEqual([
        ["refused", false],
        ["busy", true],
        ["gone", false],
      ]);
    });

    it("runs compensations to the end when the run was cancelled: a cancel changes nothing and an expired lease is retried", async () => {
      const q = queue();
      const op = await q.start([{ step: "a", compensation: undo() }, { step: "b", after: ["a"] }]);
      await q.succeed(await q.claimOne());
      const b = await q.claimOne();
      await q.cancel(op.id);
      // b's worker stops: the cancel settles by undoing a.
      const settling = await q.fail(b, false, "stopped");
      expect([settling.state, settling.cancelRequested]).toEqual(["compensating", true]);
      // Compensating because of the cancel, which no step caused.
      expect(settling.error).toEqual({ code: 1, message: "cancelled" });
      const [undoing] = [...(await q.tasks(op.id)).values()].filter((t) => t.compensates !== null);
      expect(undoing!.input).toEqual({ how: "revert", saga: { step: "a", result: { did: "a" }, error: { step: "", code: 1, message: "cancelled" } } });
      expect(await q.cancel(op.id)).toEqual(await q.operation(op.id));
      const compensation = await q.claimOne("w9", ["undo"]);
      expect((await q.report(compensation, {})).cancelRequested).toBe(false);
      await q.expire(compensation);
      expect(await q.tx((t) => q.lifecycle.recoverExpired(t))).toBe(1);
      expect(await q.task(compensation.id)).toMatchObject({ state: "queued", outcome: null });
      await q.due(compensation);
      const ended = await q.succeed(await q.claimOne("w9", ["undo"]));
      expect(ended.state).toBe("cancelled");
    });

    it("leaves a compensating operation as it is when cancelled: its compensations run to the end", async () => {
      const q = queue();
      const op = await compensating(q);
      const compensation = await q.claimOne("w9", ["undo"]);
      const operation: Operation = await q.cancel(op.id);
      expect([operation.state, operation.cancelRequested]).toEqual(["compensating", false]);
      const broken = await q.fail(compensation, false, "gone");
      expect(broken.state).toBe("compensation_failed");
    });
  });
});
