import { idempotencyKey } from "../db/idempotency-key.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import type { Operation } from "../operations/operation.js";
import { operationCodec } from "../operations/operation-codec.js";
import type { OperationStarter } from "../operations/start-operation.js";
import { FailedPreconditionError, InternalError } from "../shared/errors.js";
import type { Scope } from "../shared/scope.js";
import type { JsonObject } from "../shared/json.js";
import { agentStepKind, type WorkflowStep } from "../workflows/workflow.js";
import { workflowRunSpec } from "../workflows/workflow-run.js";

/** The operation kind of an IPA execution. */
export const ipaExecutionKind = "ipa.execute";

/** Executes deployed IPAs: starts their pinned workflow revision as an operation. */
export class IpaExecutionsService {
  readonly #uow: UnitOfWork;
  readonly #starter: OperationStarter;

  constructor(uow: UnitOfWork, starter: OperationStarter) {
    this.#uow = uow;
    this.#starter = starter;
  }

  /**
   * Starts an execution — the workflow at the pinned revision, each `agent`
   * step's task carrying the agent bound to it — in one transaction with the
   * IPA share-locked: it cannot be undeployed (nor its workflow deleted)
   * halfway, while executions of the same IPA still start side by side.
   */
  execute(scope: Scope, id: string, requestId?: string): Promise<Operation> {
    const key = idempotencyKey("ipas.execute", { id }, requestId);
    return this.#uow.transact(scope, (tx) =>
      tx.idempotency.run(key, operationCodec, async () => {
        const ipa = await tx.ipas.get(id, "share");
        if (ipa.state !== "deployed" || ipa.deployedRevision === undefined) {
          throw new FailedPreconditionError(`IPA ${id} is not deployed`, [
            { type: "IPA_NOT_DEPLOYED", subject: `ipas/${id}`, description: `the IPA is ${ipa.state}; deploy it first` },
          ]);
        }
        // Revisions page newest first below a bound: the one below pinned + 1 is the pinned one.
        const [pinned] = await tx.workflows.revisions(ipa.workflowId, 1, [ipa.deployedRevision + 1]);
        if (pinned?.revision !== ipa.deployedRevision) throw new InternalError(`IPA ${id}: pinned workflow revision is missing`);
        const agentOf = (step: WorkflowStep): JsonObject => (step.kind === agentStepKind ? { agent_id: ipa.agentBindings[step.name] ?? "" } : {});
        const spec = workflowRunSpec(pinned, ipaExecutionKind, `ipas/${id}`, agentOf);
        return this.#starter.start(scope, tx, spec);
      }),
    );
  }
}
