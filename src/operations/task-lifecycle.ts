import type { Repositories } from "../db/repositories.js";
import { FailedPreconditionError, NotFoundError } from "../shared/errors.js";
import { Compensator } from "./compensation.js";
import type { JsonObject } from "../shared/json.js";
import { isFinal, type LogLevel, type NewEvent, type Operation, rpcCode } from "./operation.js";
import { type QueueSettings, retryDelayMs } from "./queue-settings.js";
import type { QueueEvents } from "./queue-events.js";
import { byOperation, type ClaimedTask, holds, leaseLost, type Task } from "./task.js";
import type { ReadyTask } from "./task.repository.js";
import type { ClaimRecord } from "./operation.repository.js";
import { BatchCompletion, type Completion, type CompletionAnswer } from "./batch-completion.js";
import { progressOf, releasedAmong, successRecord } from "./task-success.js";

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
 * always operation row, then task rows, so concurrent claims, reports,
 * completions and cancels cannot deadlock. A claim's pick takes both with
 * SKIP LOCKED and never waits; it only shares the operation (FOR KEY
 * SHARE), so claims of one fan-out's tasks run side by side, and its one
 * wait is to append its events: for another claim appending to the same
 * operation (rows in id order), never for a completion, report or cancel,
 * which lock the operation FOR UPDATE and so cannot hold it while a claim
 * shares it. A claim's second try waits for one operation, holding nothing
 * else. Every change to an operation appends its events in the same
 * transaction.
 */
export class TaskLifecycle {
  readonly #settings: QueueSettings;
  readonly #events: QueueEvents | undefined;
  readonly #compensator: Compensator;
  readonly #batch: BatchCompletion;

  constructor(settings: QueueSettings, events?: QueueEvents) {
    this.#settings = settings;
    this.#events = events;
    this.#compensator = new Compensator(settings, events);
    this.#batch = new BatchCompletion(this, events);
  }

  /**
   * Leases up to `limit` of the oldest ready tasks of `kinds` to the worker
   * whose operations no completion, report or cancel holds (other claims
   * may share them): none when there are none (see readyBehindHeldOperation). A claim that finds nothing ready returns
   * expired leases to the queue (or fails tasks out of attempts) before it
   * waits; a claim that finds work leaves them to the housekeeping sweeper
   * (lease-recovery-job.ts), so a busy queue pays one statement per claim
   * for its pick, not two.
   */
  async claim(tx: Repositories, kinds: readonly string[], workerId: string, leaseMs: number, limit = 1): Promise<ClaimedTask[]> {
    const leased = await tx.tasks.leaseReady(kinds, limit, workerId, leaseMs);
    if (leased.length === 0) await this.recoverExpired(tx);
    return this.#claimed(tx, leased, workerId);
  }

  /** Whether claim() could find anything now (a ready task, an expired lease); read without locking. */
  claimable(tx: Repositories, kinds: readonly string[]): Promise<boolean> {
    return tx.tasks.claimable(kinds);
  }

  /**
   * The operation of the oldest ready task of `kinds`, whoever holds it;
   * read without locking. claim() skips every task whose operation a
   * completion, report or cancel holds — a sibling's completion in a
   * fan-out — so without a second try the ready siblings would go to one
   * waiting worker per poll. Run it outside claim()'s transaction.
   */
  readyBehindHeldOperation(tx: Repositories, kinds: readonly string[]): Promise<string | undefined> {
    return tx.tasks.oldestReadyOperation(kinds);
  }

  /**
   * The second try: waits for the operation's row to be free of the
   * completion, report or cancel that holds it (a few milliseconds), shares
   * it as a claim's pick does, then leases up to `limit` of its ready
   * tasks. Run it in a transaction of its own that holds nothing else, so
   * the only wait is operation, then task — the lock order of every other
   * writer.
   */
  async claimFrom(tx: Repositories, operationId: string, kinds: readonly string[], workerId: string, leaseMs: number, limit = 1): Promise<ClaimedTask[]> {
    await tx.operations.shareForClaims(operationId);
    return this.#claimed(tx, await tx.tasks.leaseReady(kinds, limit, workerId, leaseMs, operationId), workerId);
  }

  /**
   * Records the claim of freshly leased tasks on their operations: one
   * statement for all of them, each operation's events in pick order.
   */
  async #claimed(tx: Repositories, leased: readonly ReadyTask[], workerId: string): Promise<ClaimedTask[]> {
    const records: ClaimRecord[] = [...byOperation(leased.map((r) => r.task))].map(([operationId, tasks]) => ({
      operationId,
      claimed: tasks.length,
      events: tasks.flatMap((task): NewEvent[] => {
        const message = `claimed by ${workerId} (attempt ${task.attempt} of ${task.maxAttempts})`;
        const log: NewEvent = { step: task.step, payload: { type: "log", level: "info", message } };
        return task.compensates === null ? [log] : [log, this.#compensator.claimed(task, workerId)];
      }),
    }));
    await tx.operations.appendClaims(records);
    for (const { task } of leased) tx.onCommit(() => this.#events?.claimed(task.kind));
    return leased.map(({ task, resource }) => ({ task, resource }));
  }

  /**
   * Handles up to 10 leases that expired: their workers are presumed dead.
   * Claims call this for their tenant; the housekeeping sweeper calls it for
   * every tenant, so a lease expires even where nobody claims. Returns how
   * many it handled.
   */
  async recoverExpired(tx: Repositories): Promise<number> {
    const expired = await tx.tasks.expiredLeases(10);
    for (const task of expired) {
      tx.onCommit(() => this.#events?.leaseExpired(task.kind));
      const operation = await tx.operations.get(task.operationId);
      // A compensating operation's tasks are compensations: they run to the end, cancel or not.
      if (operation.cancelRequested && operation.state !== "compensating") {
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
    // Compensations run to the end even when a cancel made the operation compensate.
    return { cancelRequested: operation.cancelRequested && operation.state !== "compensating", leaseExpiresAt: extended.leaseExpiresAt! };
  }

  /** Completes a leased task with a result or a failure; returns the operation afterwards. */
  async complete(tx: Repositories, taskId: string, leaseToken: string, outcome: { result: JsonObject } | { error: TaskFailure }): Promise<Operation> {
    const { operation, task } = await this.#leased(tx, taskId, leaseToken);
    if (task.compensates !== null) {
      if ("error" in outcome) return this.#failAttempt(tx, operation, task, outcome.error);
      return this.#compensator.succeeded(tx, operation, task, outcome.result);
    }
    if ("error" in outcome) {
      if (!operation.cancelRequested) return this.#failAttempt(tx, operation, task, outcome.error);
      await tx.tasks.finish(task.id, "cancelled");
      return this.#settleCancel(tx, operation);
    }
    const finished = await tx.tasks.finishAmong(task.id, "succeeded", outcome.result);
    if (operation.cancelRequested) return this.#settleCancel(tx, operation, finished);
    const { patch, events, ended } = successRecord(task, await releasedAmong(tx, operation.id, finished));
    if (ended) tx.onCommit(() => this.#events?.completed("succeeded"));
    return (await tx.operations.record(operation.id, patch, events)).operation;
  }

  /**
   * Completes a batch of leased tasks in one transaction, each fenced by its
   * own lease (see BatchCompletion); answers in the order of `completions`.
   */
  completeAll(tx: Repositories, completions: readonly Completion[]): Promise<CompletionAnswer[]> {
    return this.#batch.complete(tx, completions);
  }

  /**
   * Cancels an operation: at once when no worker holds one of its tasks,
   * otherwise by marking it so workers learn it from ReportProgress.
   */
  async cancel(tx: Repositories, id: string): Promise<Operation> {
    const operation = await tx.operations.get(id, "update");
    // Compensations, once started, run to the end: a cancel changes nothing.
    // Stryker disable next-line ConditionalExpression,StringLiteral: equivalent: an operation ends cancelled only once its cancel was requested (cancelRequested is already true), so 'never cancelled' returns here all the same
    if (operation.state === "cancelled" || operation.cancelRequested || operation.state === "compensating") return operation;
    if (isFinal(operation.state)) {
      throw new FailedPreconditionError(`operation ${id} already ${operation.state}`, [
        { type: "OPERATION_DONE", subject: `operations/${id}`, description: `the operation already ${operation.state}; it cannot be cancelled` },
      ]);
    }
    await tx.tasks.cancelOpen(id, false);
    const marked = await tx.operations.record(id, { cancelRequested: true, stage: "cancelling" }, [{ step: "", payload: { type: "stage", stage: "cancelling" } }]);
    return this.#settleCancel(tx, marked.operation);
  }

  /**
   * The task and its (row-locked) operation, if `leaseToken` is the task's
   * current lease; FAILED_PRECONDITION (`LEASE_LOST`) otherwise — the refusal
   * every call of a fenced worker gets (artifact uploads check it too).
   */
  holding(tx: Repositories, taskId: string, leaseToken: string): Promise<{ operation: Operation; task: Task }> {
    return this.#leased(tx, taskId, leaseToken);
  }

  /** The task and its (row-locked) operation, if `leaseToken` is the task's current lease; FAILED_PRECONDITION otherwise. */
  async #leased(tx: Repositories, taskId: string, leaseToken: string): Promise<{ operation: Operation; task: Task }> {
    // The operation found through its task and locked in one statement, then the task: the one lock order.
    const operation = await tx.operations.lockOfTask(taskId);
    // Stryker disable next-line ConditionalExpression: equivalent: without an operation there is no task of this tenant, and locking it throws the same NotFoundError("task", taskId)
    if (operation === undefined) throw new NotFoundError("task", taskId);
    const task = await tx.tasks.lock(taskId);
    if (!holds(task, leaseToken)) throw leaseLost(taskId);
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
      tx.onCommit(() => this.#events?.retried(task.kind));
      await tx.tasks.requeue(task.id, delay);
      // The next attempt starts from nothing: the operation's progress loses what this one reported, or a
      // report without a value (a message alone) would repeat the stale figure until one with a value came.
      const progress = task.progress > 0 ? progressOf(await tx.tasks.ofOperation(operation.id)) : undefined;
      return (await tx.operations.record(operation.id, { message: failure.message, ...(progress !== undefined && { progress }) }, [error])).operation;
    }
    if (task.compensates !== null) return this.#compensator.failed(tx, operation, task, failure, [error]);
    await tx.tasks.finish(task.id, "failed");
    await tx.tasks.cancelOpen(operation.id, true);
    const compensating = await this.#compensator.begin(tx, operation, { step: task.step, ...failure }, [error]);
    if (compensating) return compensating;
    const final = { code: failure.code, message: task.step ? `step ${task.step}: ${failure.message}` : failure.message };
    const completion: NewEvent = { step: "", payload: { type: "completion", state: "failed", result: null, error: final } };
    const patch = { state: "failed", stage: "failed", message: final.message, error: final, ended: true } as const;
    tx.onCommit(() => this.#events?.completed("failed"));
    return (await tx.operations.record(operation.id, patch, [error, completion])).operation;
  }

  /** A cancel-requested operation ends, cancelled, once no worker holds one of its tasks. */
  async #settleCancel(tx: Repositories, operation: Operation, known?: Task[]): Promise<Operation> {
    // `known`: the operation's tasks, when the caller just read them.
    const tasks = known ?? (await tx.tasks.ofOperation(operation.id));
    if (tasks.some((t) => t.state === "leased")) return operation;
    // Stryker disable next-line BooleanLiteral: equivalent: no task is leased here (checked above), so including leased tasks changes nothing
    await tx.tasks.cancelOpen(operation.id, true);
    const compensating = await this.#compensator.begin(tx, operation, { step: "", code: rpcCode.cancelled, message: "cancelled" });
    if (compensating) return compensating;
    const error = { code: rpcCode.cancelled, message: "cancelled" };
    const completion: NewEvent = { step: "", payload: { type: "completion", state: "cancelled", result: null, error } };
    const patch = { state: "cancelled", stage: "cancelled", message: "cancelled", error, ended: true } as const;
    tx.onCommit(() => this.#events?.completed("cancelled"));
    return (await tx.operations.record(operation.id, patch, [completion])).operation;
  }
}
