import type { Repositories } from "../db/repositories.js";
import { FailedPreconditionError, NotFoundError } from "../shared/errors.js";
import type { JsonObject } from "../shared/json.js";
import type { NewEvent, Operation } from "./operation.js";
import type { OperationRecord } from "./operation.repository.js";
import type { QueueEvents } from "./queue-events.js";
import type { TaskFailure, TaskLifecycle } from "./task-lifecycle.js";
import { byOperation, holds, leaseLost, type Task } from "./task.js";
import { releasedAmong, successRecord } from "./task-success.js";

/** How a task ended, as its worker reports it. */
export type TaskOutcomeReport = { readonly result: JsonObject } | { readonly error: TaskFailure };

/** One completion of a batch. */
export interface Completion {
  readonly taskId: string;
  readonly leaseToken: string;
  readonly outcome: TaskOutcomeReport;
}

/** How one completion of a batch went: its operation afterwards (its id and state), or why it was refused. */
export type CompletionAnswer =
  | { readonly taskId: string; readonly operation: Pick<Operation, "id" | "state"> }
  | { readonly taskId: string; readonly refused: NotFoundError | FailedPreconditionError };

/** A completion of the common case: a success of a step (not a compensation) under its lease. */
interface Success {
  /** Its place in the request. */
  readonly index: number;
  /** As locked, before the batch. */
  readonly task: Task;
  readonly result: JsonObject;
}

/** The batch's completions sorted by how they are done. */
interface Sorted {
  /** By operation, each operation's in request order. */
  readonly successes: ReadonlyMap<string, readonly Success[]>;
  /** Indexes of completions done one by one (TaskLifecycle.complete), in operation order. */
  readonly oneByOne: readonly number[];
}

/**
 * BatchCompleteTasks: a batch of completions in one transaction, each fenced
 * by its own lease, answered as if CompleteTask had been called for each in
 * turn — the same events, in the same order, gapless per operation — in a
 * few statements for the whole batch where each completion took four:
 * every operation locked in id order, then every task (the one lock order),
 * then the common case — successes of steps of operations nobody cancels —
 * finished in one statement and recorded on their operations in one more.
 * An operation with anything else in the batch (a failure, a compensation,
 * a cancel under way, the same task twice) has all its completions done one
 * by one, in request order, in the same transaction: those paths are rare,
 * and one task's failure there can decide what a sibling's success means.
 */
export class BatchCompletion {
  readonly #lifecycle: Pick<TaskLifecycle, "complete">;
  readonly #events: QueueEvents | undefined;

  constructor(lifecycle: Pick<TaskLifecycle, "complete">, events?: QueueEvents) {
    this.#lifecycle = lifecycle;
    this.#events = events;
  }

  /** Completes `completions`; answers in their order. A refusal (NOT_FOUND, LEASE_LOST) changes nothing and the others still count. */
  async complete(tx: Repositories, completions: readonly Completion[]): Promise<CompletionAnswer[]> {
    const ids = completions.map((c) => c.taskId);
    const operations = new Map((await tx.operations.lockOfTasks(ids)).map((o) => [o.id, o]));
    const tasks = new Map((await tx.tasks.lockAll(ids)).map((t) => [t.id, t]));
    const answers: CompletionAnswer[] = new Array(completions.length);
    const { successes, oneByOne } = sort(completions, tasks, operations, answers);
    await this.#succeed(tx, successes, operations, answers);
    for (const i of oneByOne) {
      const { taskId, leaseToken, outcome } = completions[i]!;
      try {
        answers[i] = { taskId, operation: await this.#lifecycle.complete(tx, taskId, leaseToken, outcome) };
      } catch (err) {
        // Refusals are decided before the task's first write: the transaction goes on.
        if (!(err instanceof NotFoundError || err instanceof FailedPreconditionError)) throw err;
        answers[i] = { taskId, refused: err };
      }
    }
    return answers;
  }

  /**
   * Finishes the successes' tasks in one statement, then records on each
   * operation what CompleteTask would have recorded task after task —
   * each success's progress event as the operation stood right after it,
   * the batch's later successes still leased — in one statement for all.
   */
  async #succeed(tx: Repositories, successes: Sorted["successes"], operations: ReadonlyMap<string, Operation>, answers: CompletionAnswer[]): Promise<void> {
    if (successes.size === 0) return;
    const finished = byOperation(await tx.tasks.finishAllAmong([...successes.values()].flat().map((s) => ({ id: s.task.id, result: s.result })), "succeeded"));
    const records: OperationRecord[] = [];
    const last = new Map<string, Success>();
    for (const [operationId, items] of successes) {
      const after = await releasedAmong(tx, operationId, finished.get(operationId) ?? []);
      const pending = new Map(items.map((s) => [s.task.id, s.task]));
      const recorded = items.map((s) => {
        pending.delete(s.task.id);
        // Not the operation's last success: the operation goes on (only the last can end it).
        answers[s.index] = { taskId: s.task.id, operation: { id: operationId, state: operations.get(operationId)!.state } };
        return successRecord(s.task, after.map((t) => pending.get(t.id) ?? t));
      });
      const { patch, ended } = recorded.at(-1)!;
      records.push({ operationId, patch, events: recorded.flatMap((r) => r.events) });
      if (ended) tx.onCommit(() => this.#events?.completed("succeeded"));
      last.set(operationId, items.at(-1)!);
    }
    for (const operation of await tx.operations.recordAll(records)) {
      const s = last.get(operation.id)!;
      answers[s.index] = { taskId: s.task.id, operation };
    }
  }
}

/**
 * Sorts the batch: unknown tasks are answered NOT_FOUND here; an operation
 * whose every completion is a step's success, once each, and which no
 * cancel is settling, has its completions held with this lease succeed
 * together (the others answered LEASE_LOST here); every other operation's
 * completions are done one by one.
 */
function sort(
  completions: readonly Completion[],
  tasks: ReadonlyMap<string, Task>,
  operations: ReadonlyMap<string, Operation>,
  answers: CompletionAnswer[],
): Sorted {
  const indexesOf = new Map<string, number[]>();
  completions.forEach(({ taskId }, i) => {
    const task = tasks.get(taskId);
    if (task === undefined) answers[i] = { taskId, refused: new NotFoundError("task", taskId) };
    else indexesOf.set(task.operationId, [...(indexesOf.get(task.operationId) ?? []), i]);
  });
  const successes = new Map<string, Success[]>();
  const oneByOne: number[] = [];
  // In the operations' id order, as they were locked.
  for (const [operationId, operation] of operations) {
    const indexes = indexesOf.get(operationId) ?? [];
    const common =
      !operation.cancelRequested &&
      new Set(indexes.map((i) => completions[i]!.taskId)).size === indexes.length &&
      indexes.every((i) => "result" in completions[i]!.outcome && tasks.get(completions[i]!.taskId)!.compensates === null);
    if (!common) {
      oneByOne.push(...indexes);
      continue;
    }
    for (const i of indexes) {
      const { taskId, leaseToken, outcome } = completions[i]!;
      const task = tasks.get(taskId)!;
      if (!holds(task, leaseToken)) answers[i] = { taskId, refused: leaseLost(taskId) };
      else if ("result" in outcome) successes.set(operationId, [...(successes.get(operationId) ?? []), { index: i, task, result: outcome.result }]);
    }
  }
  return { successes, oneByOne };
}
