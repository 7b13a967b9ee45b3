import { randomUUID } from "node:crypto";
import type { Repositories } from "../db/repositories.js";
import type { JsonObject } from "../shared/json.js";
import type { CompensationRecord, NewEvent, Operation, OperationError } from "./operation.js";
import type { QueueSettings } from "./queue-settings.js";
import type { QueueEvents } from "./queue-events.js";
import type { Task } from "./task.js";
import type { CompensationRow } from "./task.repository.js";
import type { TaskFailure } from "./task-lifecycle.js";

/** Why an operation compensates: the step that failed for good (empty for a cancel) and its error. */
export interface CompensationCause extends OperationError {
  readonly step: string;
}

/**
 * Sagas: undoing what a workflow run did when it cannot finish. Called by
 * the task lifecycle, inside its transaction and holding the operation's
 * row lock, at three points: a step failed for good or the run's cancel
 * settled (begin), and a compensation task succeeded (succeeded) or failed
 * for good (failed). Compensations are ordinary tasks — claimed, fenced by
 * their lease, retried and recovered like any — so each runs exactly once
 * as far as the queue can tell; `compensates` tells them from steps.
 *
 * Order: a step is compensated after every succeeded step that depended on
 * it (directly or through other steps), which is the reverse of the order
 * in which they could complete; steps that ran independently, in parallel,
 * are compensated in parallel.
 */
export class Compensator {
  readonly #settings: QueueSettings;
  readonly #events: QueueEvents | undefined;

  constructor(settings: QueueSettings, events?: QueueEvents) {
    this.#settings = settings;
    this.#events = events;
  }

  /**
   * Starts compensating, after the caller ended every task of the operation
   * that was not done: queues a compensation for every succeeded step that
   * declares one and records the operation as compensating, appending
   * `leading` first. Undefined (nothing written) when no step needs undoing:
   * the caller then ends the operation as it would have.
   */
  async begin(tx: Repositories, operation: Operation, cause: CompensationCause, leading: readonly NewEvent[] = []): Promise<Operation | undefined> {
    const tasks = await tx.tasks.ofOperation(operation.id);
    const done = tasks.filter((t) => t.compensates === null && t.outcome === "succeeded" && t.compensation !== null);
    if (done.length === 0) return undefined;
    const dependents = dependentsOf(tasks);
    const ids = new Map(done.map((t) => [t.id, randomUUID()]));
    const error = { step: cause.step, code: cause.code, message: cause.message };
    const rows: CompensationRow[] = done.map((t) => ({
      id: ids.get(t.id)!,
      step: t.step,
      kind: t.compensation!.kind,
      input: { ...t.compensation!.config, saga: { step: t.step, result: t.result ?? {}, error } },
      // Wait for the compensations of every succeeded step that depended on this one.
      dependsOn: [...(dependents.get(t.id) ?? [])].flatMap((d) => (ids.has(d) ? [ids.get(d)!] : [])),
      compensates: t.id,
      maxAttempts: t.compensation!.maxAttempts || this.#settings.maxAttempts,
      traceParent: t.traceParent,
    }));
    await tx.tasks.insertCompensations(operation.id, rows);
    // Listed in the order they can run: the latest steps' first.
    const depth = depthsOf(tasks);
    const ordered = [...rows].sort((a, b) => depth.get(b.compensates)! - depth.get(a.compensates)! || a.step.localeCompare(b.step));
    const compensations: CompensationRecord[] = ordered.map((r) => ({ step: r.step, kind: r.kind, outcome: "pending", attempt: 0, error: null }));
    const message = `compensating ${ordered.length} step${ordered.length === 1 ? "" : "s"}`;
    const started: NewEvent = {
      step: "",
      payload: { type: "compensation", phase: "started", kind: "", attempt: 0, workerId: "", error: { code: cause.code, message: cause.message }, steps: ordered.map((r) => r.step) },
    };
    const failure = { code: cause.code, message: cause.step ? `step ${cause.step}: ${cause.message}` : cause.message };
    const patch = { state: "compensating", stage: "compensating", message, error: failure, compensations } as const;
    return (await tx.operations.record(operation.id, patch, [...leading, started, { step: "", payload: { type: "stage", stage: "compensating" } }])).operation;
  }

  /** The event recording that a worker claimed a compensation task. */
  claimed(task: Task, workerId: string): NewEvent {
    return { step: task.step, payload: { type: "compensation", phase: "claimed", kind: task.kind, attempt: task.attempt, workerId, error: null, steps: [] } };
  }

  /** A compensation task succeeded: queue the compensations that waited for it, and end the operation once all are done. */
  async succeeded(tx: Repositories, operation: Operation, task: Task, result: JsonObject): Promise<Operation> {
    await tx.tasks.finish(task.id, "succeeded", result);
    await tx.tasks.release(operation.id);
    const event: NewEvent = { step: task.step, payload: { type: "compensation", phase: "completed", kind: task.kind, attempt: task.attempt, workerId: "", error: null, steps: [] } };
    return this.#settle(tx, operation, withOutcome(operation.compensations, task, "succeeded", null), [event]);
  }

  /**
   * A compensation task failed for good: the compensations that have not
   * started never will (what they would undo stays for people to handle),
   * those running finish, and then the operation ends needing attention.
   */
  async failed(tx: Repositories, operation: Operation, task: Task, failure: TaskFailure, leading: readonly NewEvent[]): Promise<Operation> {
    await tx.tasks.finish(task.id, "failed");
    await tx.tasks.cancelOpen(operation.id, false);
    const error = { code: failure.code, message: failure.message };
    const event: NewEvent = { step: task.step, payload: { type: "compensation", phase: "failed", kind: task.kind, attempt: task.attempt, workerId: "", error, steps: [] } };
    return this.#settle(tx, operation, withOutcome(operation.compensations, task, "failed", error), [...leading, event]);
  }

  /** Records the compensations' progress; once none is open, ends the operation. */
  async #settle(tx: Repositories, operation: Operation, records: CompensationRecord[], events: NewEvent[]): Promise<Operation> {
    const tasks = (await tx.tasks.ofOperation(operation.id)).filter((t) => t.compensates !== null);
    if (tasks.some((t) => t.state !== "done")) return (await tx.operations.record(operation.id, { compensations: records }, events)).operation;
    const final = records.map((r): CompensationRecord => (r.outcome === "pending" ? { ...r, outcome: "skipped" } : r));
    const broken = final.find((r) => r.outcome === "failed");
    const state = broken ? "compensation_failed" : operation.cancelRequested ? "cancelled" : "failed";
    const error = broken
      ? { code: broken.error!.code, message: `compensation of step ${broken.step} failed: ${broken.error!.message}; manual attention needed` }
      : (operation.error ?? { code: 2, message: state });
    events.push({ step: "", payload: { type: "completion", state, result: null, error } });
    tx.onCommit(() => this.#events?.completed(state));
    const patch = { state, stage: state, message: error.message, error, compensations: final, ended: true } as const;
    return (await tx.operations.record(operation.id, patch, events)).operation;
  }
}

/** The records with the one of `task`'s step updated. */
function withOutcome(records: readonly CompensationRecord[], task: Task, outcome: CompensationRecord["outcome"], error: OperationError | null): CompensationRecord[] {
  return records.map((r) => (r.step === task.step ? { ...r, outcome, attempt: task.attempt, error } : r));
}

/** For each task id, the ids of the tasks that depend on it, directly or transitively. */
function dependentsOf(tasks: readonly Task[]): Map<string, Set<string>> {
  const direct = new Map<string, string[]>();
  for (const t of tasks) for (const d of t.dependsOn) direct.set(d, [...(direct.get(d) ?? []), t.id]);
  const all = new Map<string, Set<string>>();
  const visit = (id: string): Set<string> => {
    const known = all.get(id);
    if (known) return known;
    const found = new Set<string>();
    all.set(id, found);
    for (const child of direct.get(id) ?? []) {
      found.add(child);
      for (const further of visit(child)) found.add(further);
    }
    return found;
  };
  for (const t of tasks) visit(t.id);
  return all;
}

/** Each task's depth: 0 without dependencies, else one more than its deepest dependency. */
function depthsOf(tasks: readonly Task[]): Map<string, number> {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const depth = new Map<string, number>();
  const visit = (id: string): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    const deps = byId.get(id)?.dependsOn ?? [];
    const d = deps.length === 0 ? 0 : 1 + Math.max(...deps.map(visit));
    depth.set(id, d);
    return d;
  };
  for (const t of tasks) visit(t.id);
  return depth;
}
