import { FailedPreconditionError } from "../shared/errors.js";
import type { JsonObject } from "../shared/json.js";

/** blocked (waiting for its dependencies) → queued → leased → done. */
export type TaskState = "blocked" | "queued" | "leased" | "done";

/** How a done task ended. */
export type TaskOutcome = "succeeded" | "failed" | "cancelled";

/** One unit of work of an operation, as the queue holds it. */
export interface Task {
  readonly id: string;
  readonly operationId: string;
  /** The workflow step it carries out; empty for single-task operations. */
  readonly step: string;
  readonly kind: string;
  readonly input: JsonObject;
  readonly state: TaskState;
  readonly outcome: TaskOutcome | null;
  /** Ids of the tasks that must succeed before this one is queued. */
  readonly dependsOn: readonly string[];
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly progress: number;
  readonly result: JsonObject | null;
  readonly leaseToken: string | null;
  readonly leaseExpiresAt: Date | null;
  readonly leaseMs: number;
  readonly workerId: string;
  /** The W3C traceparent of the call that started the operation (null when it was not traced): the worker continues that trace. */
  readonly traceParent: string | null;
  /** How to undo the step once it succeeded; null: it needs no undoing. */
  readonly compensation: TaskCompensation | null;
  /** On a compensation task: the id of the task it undoes; null on every other task. */
  readonly compensates: string | null;
}

/** How a step is undone (a saga): a task of its own, queued only when the operation compensates. */
export interface TaskCompensation {
  readonly kind: string;
  readonly config: JsonObject;
  /** Attempts in all; 0: the gateway's default. */
  readonly maxAttempts: number;
}

/** A task to enqueue. `name` identifies it among its siblings for `dependsOn`. */
export interface TaskSpec {
  readonly step: string;
  readonly kind: string;
  readonly input: JsonObject;
  /** Steps (by `step` name) that must succeed first. */
  readonly dependsOn: readonly string[];
  /** How to undo the step once it succeeded; absent: it needs no undoing. */
  readonly compensation?: TaskCompensation | undefined;
}

/** A task leased to a worker, with the resource its operation acts on. */
export interface ClaimedTask {
  readonly task: Task;
  readonly resource: string;
}

/** Whether `leaseToken` is the task's current lease. */
export function holds(task: Task, leaseToken: string): boolean {
  return task.state === "leased" && task.leaseToken === leaseToken;
}

/** The refusal of a call whose lease is not the task's current one: FAILED_PRECONDITION, LEASE_LOST. */
export function leaseLost(taskId: string): FailedPreconditionError {
  return new FailedPreconditionError(`task ${taskId} is not leased with this token`, [
    {
      type: "LEASE_LOST",
      subject: `tasks/${taskId}`,
      description: "the lease expired and the task was claimed again, or the task or its operation ended; stop working on it",
    },
  ]);
}

/** Tasks grouped by operation, in first-seen order (Map.groupBy needs Node 21). */
export function byOperation(tasks: readonly Task[]): Map<string, Task[]> {
  const groups = new Map<string, Task[]>();
  for (const t of tasks) {
    const group = groups.get(t.operationId);
    if (group) group.push(t);
    else groups.set(t.operationId, [t]);
  }
  return groups;
}
