import type { Repositories } from "../db/repositories.js";
import type { JsonObject } from "../shared/json.js";
import type { NewEvent } from "./operation.js";
import type { OperationRecord } from "./operation.repository.js";
import type { Task } from "./task.js";

/** What a task's success records on its operation: the change, its events, and whether it ended the operation. */
export interface SuccessRecord {
  readonly patch: OperationRecord["patch"];
  readonly events: readonly NewEvent[];
  /** Every task of the operation succeeded: it succeeded, with its result. */
  readonly ended: boolean;
}

/**
 * What the success of `task` records on its operation, `tasks` being the
 * operation's tasks right after it (blocked ones released): a progress
 * event, and once every task succeeded the operation's success with its
 * result and completion event. CompleteTask records one; a batch of
 * completions records the same, task after task, for each operation.
 */
export function successRecord(task: Task, tasks: readonly Task[]): SuccessRecord {
  const done = `${task.step ? `step ${task.step}` : "task"} succeeded`;
  if (!tasks.every((t) => t.outcome === "succeeded")) {
    const progress = progressOf(tasks);
    const event: NewEvent = { step: task.step, payload: { type: "progress", progress, stepProgress: 1, message: done } };
    return { patch: { progress, message: done }, events: [event], ended: false };
  }
  const result = resultOf(tasks);
  const events: NewEvent[] = [
    { step: task.step, payload: { type: "progress", progress: 1, stepProgress: 1, message: done } },
    { step: "", payload: { type: "completion", state: "succeeded", result, error: null } },
  ];
  return { patch: { state: "succeeded", progress: 1, stage: "succeeded", message: done, result, ended: true }, events, ended: true };
}

/**
 * The operation's tasks after a success (`tasks`, as finishAmong read
 * them), its blocked tasks whose every dependency succeeded queued. Only
 * an operation that has blocked tasks pays for the release statement:
 * most have none.
 */
export async function releasedAmong(tx: Repositories, operationId: string, tasks: readonly Task[]): Promise<readonly Task[]> {
  if (!tasks.some((t) => t.state === "blocked")) return tasks;
  const released = new Map((await tx.tasks.release(operationId)).map((t) => [t.id, t]));
  return tasks.map((t) => released.get(t.id) ?? t);
}

/** Share of the work done: succeeded tasks count 1, leased ones their reported progress. */
export function progressOf(tasks: readonly Task[]): number {
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
