import { randomUUID } from "node:crypto";
import type { Repositories } from "../db/repositories.js";
import type { Scope } from "../shared/scope.js";
import type { Operation } from "./operation.js";
import type { QueueSettings } from "./queue-settings.js";
import type { TaskSpec } from "./task.js";
import { callTraceParent } from "../tracing/tracing.js";

/** What a start asks for: the work's kind, the resource it acts on, and its tasks. */
export interface OperationSpec {
  readonly kind: string;
  readonly resource: string;
  /** Step names are unique and `dependsOn` names only steps of this list. */
  readonly tasks: readonly TaskSpec[];
}

/**
 * Starts operations inside the caller's unit of work: the operation, its
 * tasks and its first event are written in the caller's transaction, so a
 * start that rolls back leaves nothing behind and a committed one is
 * claimable at once (waiting workers are woken once it commits).
 */
export class OperationStarter {
  readonly #settings: QueueSettings;

  constructor(settings: QueueSettings) {
    this.#settings = settings;
  }

  async start(scope: Scope, tx: Repositories, spec: OperationSpec): Promise<Operation> {
    const operation = await tx.operations.create(spec.kind, spec.resource);
    if (spec.tasks.length === 0) {
      // Nothing to do is done: a workflow without steps succeeds at once.
      const result = { steps: {} };
      const done = await tx.operations.record(operation.id, { state: "succeeded", progress: 1, result, ended: true }, [
        { step: "", payload: { type: "completion", state: "succeeded", result, error: null } },
      ]);
      return done.operation;
    }
    const ids = new Map(spec.tasks.map((t) => [t.step, randomUUID()]));
    // The tasks carry the starting call's trace to whichever worker claims them.
    const traceParent = callTraceParent(scope.trace);
    const rows = spec.tasks.map((t) => ({
      id: ids.get(t.step)!,
      step: t.step,
      kind: t.kind,
      input: t.input,
      dependsOn: t.dependsOn.map((name) => ids.get(name)!),
      traceParent,
      compensation: t.compensation,
    }));
    await tx.tasks.insert(operation.id, rows, this.#settings.maxAttempts);
    const queued = await tx.operations.record(operation.id, { stage: "queued" }, [{ step: "", payload: { type: "stage", stage: "queued" } }]);
    return queued.operation;
  }
}
