import type { Repositories } from "../db/repositories.js";
import { FailedPreconditionError } from "../shared/errors.js";
import type { JsonObject } from "../shared/json.js";
import { isFinal, type LogLevel, type NewEvent, type Operation, rpcCode } from "./operation.js";
import { type QueueSettings, retryDelayMs } from "./queue-settings.js";
import type { ClaimedTask, Task } from "./task.js";

/** How a worker says a task failed. */
export interface TaskFailure {
  readonly code: number;
  readonly message: string;
  readonly retryable: boolean;
}

/** What a worker reports while it holds a lease. */
export interface ProgressReport {
  readonly progress?: number | undefined;
  readonly stage: string;
  readonly message: string;
  readonly logs: ReadonlyArray<{ readonly level: LogLevel; readonly message: string }>;
}

/**
 * The task state machine, run inside one transaction per step. Lock order is
 * always operation row, then task rows (a claim takes both with SKIP LOCKED,
 * or, when every ready task's operation is held, waits for one operation
 * holding nothing else), so concurrent claims, reports, completions and
 * cancels cannot deadlock. Every change to an operation appends its events
 * in the same transaction.
 */
export class TaskLifecycle {
  readonly #settings: QueueSettings;

  constructor(settings: QueueSettings) {
    this.#settings = settings;
  }

  /**
   * Returns expired leases to the queue (or fails tasks out of attempts),
   * then leases the oldest ready task of `kinds` to the worker, if any.
   */
  async claim(tx: Repositories, kinds: readonly string[], workerId: string, leaseMs: number): Promise<ClaimedTask | undefined> {
    const recovered = await this.recoverExpired(tx);
    let ready = await tx.tasks.nextReady(kinds);
    // Waiting for an operation while holding another (recovered) one could
    // deadlock against a claim doing the same the other way round; rare
    // enough to leave to the next try.
    if (!ready && recovered === 0) ready = await this.#nextReadyBehindClaim(tx, kinds);
    if (!ready) return undefined;
    const operation = await tx.operations.get(ready.operationId);
    const task = await tx.tasks.lease(ready.id, workerId, leaseMs);
    const events: NewEvent[] = [];
    if (operation.state === "queued") events.push({ step: "", payload: { type: "stage", stage: "running" } });
    const claimed = `claimed by ${workerId} (attempt ${task.attempt} of ${task.maxAttempts})`;
    events.push({ step: task.step, payload: { type: "log", level: "info", message: claimed } });
    const started = operation.state === "queued" ? ({ state: "running", stage: "running", started: true } as const) : {};
    await tx.operations.record(operation.id, { attempt: operation.attempt + 1, ...started }, events);
    return { task, resource: operation.resource };
  }

  /**
   * The pick above skips every task whose operation another transaction
   * holds — and a claim holds its operation until it commits, so the ready
   * siblings of a fan-out would go to one waiting worker per poll. When only
   * such tasks are ready, this waits for the oldest one's operation (a few
   * milliseconds: claims and completions are short) and takes its next ready
   * task. Operation, then task: the lock order of every other writer.
   */
  async #nextReadyBehindClaim(tx: Repositories, kinds: readonly string[]): Promise<Task | undefined> {
    const operationId = await tx.tasks.oldestReadyOperation(kinds);
    if (operationId === undefined) return undefined;
    await tx.operations.get(operationId, "update");
    return tx.tasks.nextReady(kinds, operationId);
  }

  /**
   * Handles leases that expired: their workers are presumed dead. No sweeper
   * needed: claims call this. Returns how many it handled (their operations
   * stay locked until the transaction ends).
   */
  async recoverExpired(tx: Repositories): Promise<number> {
    const expired = await tx.tasks.expiredLeases(10);
    for (const task of expired) {
      const operation = await tx.operations.get(task.operationId);
      if (operation.cancelRequested) {
        await tx.tasks.finish(task.id, "cancelled");
        await this.#settleCancel(tx, operation);
        continue;
      }
      const message = `lease of ${task.workerId || "its worker"} expired`;
      await this.#failAttempt(tx, operation, task, { code: rpcCode.deadlineExceeded, message, retryable: true });
    }
    return expired.length;
  }

  /** Records a progress report and extends the lease; says whether cancellation was requested. */
  async report(tx: Repositories, taskId: string, leaseToken: string, report: ProgressReport): Promise<{ cancelRequested: boolean; leaseExpiresAt: Date }> {
    const { operation, task } = await this.#leased(tx, taskId, leaseToken);
    const extended = await tx.tasks.extend(task.id, report.progress);
    const events: NewEvent[] = [];
    if (report.stage !== "" && report.stage !== operation.stage) events.push({ step: task.step, payload: { type: "stage", stage: report.stage } });
    for (const line of report.logs) events.push({ step: task.step, payload: { type: "log", ...line } });
    let progress = operation.progress;
    if (report.progress !== undefined || report.message !== "") {
      if (report.progress !== undefined) progress = progressOf(await tx.tasks.ofOperation(operation.id));
      events.push({ step: task.step, payload: { type: "progress", progress, stepProgress: extended.progress, message: report.message } });
    }
    if (events.length > 0) {
      await tx.operations.record(operation.id, {
        progress,
        ...(report.stage !== "" && { stage: report.stage }),
        ...(report.message !== "" && { message: report.message }),
      }, events);
    }
    return { cancelRequested: operation.cancelRequested, leaseExpiresAt: extended.leaseExpiresAt! };
  }

  /** Completes a leased task with a result or a failure; returns the operation afterwards. */
  async complete(tx: Repositories, taskId: string, leaseToken: string, outcome: { result: JsonObject } | { error: TaskFailure }): Promise<Operation> {
    const { operation, task } = await this.#leased(tx, taskId, leaseToken);
    if ("error" in outcome) {
      if (!operation.cancelRequested) return this.#failAttempt(tx, operation, task, outcome.error);
      await tx.tasks.finish(task.id, "cancelled");
      return this.#settleCancel(tx, operation);
    }
    await tx.tasks.finish(task.id, "succeeded", outcome.result);
    if (operation.cancelRequested) return this.#settleCancel(tx, operation);
    await tx.tasks.release(operation.id);
    const tasks = await tx.tasks.ofOperation(operation.id);
    const done = `${task.step ? `step ${task.step}` : "task"} succeeded`;
    if (!tasks.every((t) => t.outcome === "succeeded")) {
      const progress = progressOf(tasks);
      const event: NewEvent = { step: task.step, payload: { type: "progress", progress, stepProgress: 1, message: done } };
      return (await tx.operations.record(operation.id, { progress, message: done }, [event])).operation;
    }
    const result = resultOf(tasks);
    const events: NewEvent[] = [
      { step: task.step, payload: { type: "progress", progress: 1, stepProgress: 1, message: done } },
      { step: "", payload: { type: "completion", state: "succeeded", result, error: null } },
    ];
    return (await tx.operations.record(operation.id, { state: "succeeded", progress: 1, stage: "succeeded", message: done, result, ended: true }, events)).operation;
  }

  /**
   * Cancels an operation: at once when no worker holds one of its tasks,
   * otherwise by marking it so workers learn it from ReportProgress.
   */
  async cancel(tx: Repositories, id: string): Promise<Operation> {
    const operation = await tx.operations.get(id, "update");
    if (operation.state === "cancelled" || operation.cancelRequested) return operation;
    if (isFinal(operation.state)) {
      throw new FailedPreconditionError(`operation ${id} already ${operation.state}`, [
        { type: "OPERATION_DONE", subject: `operations/${id}`, description: `the operation already ${operation.state}; it cannot be cancelled` },
      ]);
    }
    await tx.tasks.cancelOpen(id, false);
    const marked = await tx.operations.record(id, { cancelRequested: true, stage: "cancelling" }, [{ step: "", payload: { type: "stage", stage: "cancelling" } }]);
    return this.#settleCancel(tx, marked.operation);
  }

  /** The task and its (row-locked) operation, if `leaseToken` is the task's current lease; FAILED_PRECONDITION otherwise. */
  async #leased(tx: Repositories, taskId: string, leaseToken: string): Promise<{ operation: Operation; task: Task }> {
    const found = await tx.tasks.find(taskId);
    const operation = await tx.operations.get(found.operationId, "update");
    const task = await tx.tasks.lock(taskId);
    if (task.state !== "leased" || task.leaseToken !== leaseToken) {
      throw new FailedPreconditionError(`task ${taskId} is not leased with this token`, [
        {
          type: "LEASE_LOST",
          subject: `tasks/${taskId}`,
          description: "the lease expired and the task was claimed again, or the task or its operation ended; stop working on it",
        },
      ]);
    }
    return { operation, task };
  }

  /** One attempt failed: retry with backoff while attempts remain and it may help, else fail the operation. */
  async #failAttempt(tx: Repositories, operation: Operation, task: Task, failure: TaskFailure): Promise<Operation> {
    const willRetry = failure.retryable && task.attempt < task.maxAttempts;
    const delay = retryDelayMs(this.#settings, task.attempt);
    const error: NewEvent = {
      step: task.step,
      payload: {
        type: "error",
        code: failure.code,
        message: failure.message,
        retryable: failure.retryable,
        attempt: task.attempt,
        willRetry,
        retryTime: willRetry ? new Date(Date.now() + delay).toISOString() : null,
      },
    };
    if (willRetry) {
      await tx.tasks.requeue(task.id, delay);
      return (await tx.operations.record(operation.id, { message: failure.message }, [error])).operation;
    }
    await tx.tasks.finish(task.id, "failed");
    await tx.tasks.cancelOpen(operation.id, true);
    const final = { code: failure.code, message: task.step ? `step ${task.step}: ${failure.message}` : failure.message };
    const completion: NewEvent = { step: "", payload: { type: "completion", state: "failed", result: null, error: final } };
    const patch = { state: "failed", stage: "failed", message: final.message, error: final, ended: true } as const;
    return (await tx.operations.record(operation.id, patch, [error, completion])).operation;
  }

  /** A cancel-requested operation ends, cancelled, once no worker holds one of its tasks. */
  async #settleCancel(tx: Repositories, operation: Operation): Promise<Operation> {
    const tasks = await tx.tasks.ofOperation(operation.id);
    if (tasks.some((t) => t.state === "leased")) return operation;
    await tx.tasks.cancelOpen(operation.id, true);
    const error = { code: rpcCode.cancelled, message: "cancelled" };
    const completion: NewEvent = { step: "", payload: { type: "completion", state: "cancelled", result: null, error } };
    const patch = { state: "cancelled", stage: "cancelled", message: "cancelled", error, ended: true } as const;
    return (await tx.operations.record(operation.id, patch, [completion])).operation;
  }
}

/** Share of the work done: succeeded tasks count 1, leased ones their reported progress. */
function progressOf(tasks: readonly Task[]): number {
  if (tasks.length === 0) return 1;
  const done = tasks.reduce((sum, t) => sum + (t.outcome === "succeeded" ? 1 : t.state === "leased" ? t.progress : 0), 0);
  return Math.round((done / tasks.length) * 10_000) / 10_000;
}

/** A single-task operation's result is its task's; a workflow run's maps step names to results. */
function resultOf(tasks: readonly Task[]): JsonObject {
  const only = tasks[0];
  if (tasks.length === 1 && only && only.step === "") return only.result ?? {};
  return { steps: Object.fromEntries(tasks.map((t) => [t.step, t.result ?? {}])) };
}
