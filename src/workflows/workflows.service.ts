import { idempotencyKey } from "../db/idempotency-key.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import { refuseWhileDeployed } from "../ipas/ipa.js";
import type { Operation } from "../operations/operation.js";
import { operationCodec } from "../operations/operation-codec.js";
import type { OperationStarter } from "../operations/start-operation.js";
import type { KeysetPager, KeysetQuery } from "../shared/keyset-pager.js";
import type { Page, PageRequest } from "../shared/pagination.js";
import { ResourceService } from "../shared/resource-service.js";
import type { Scope } from "../shared/scope.js";
import type { NewWorkflow, Workflow, WorkflowPatch } from "./workflow.js";
import { workflowRunSpec } from "./workflow-run.js";
import { checkSteps } from "./workflow-steps.js";

/** Revisions page newest first; the token is bound to the one workflow. */
function revisionsOf(id: string): KeysetQuery<Workflow> {
  return { query: `workflows/${id}/revisions`, shape: ["integer"], keyOf: (w) => [w.revision] };
}

/** Where steps sit in create and update requests, for naming bad ones. */
const stepsPath = "workflow.steps";

/**
 * The workflows use cases, each in one unit of work. Every update writes a
 * new revision. A workflow that deployed IPAs run must stay active and
 * cannot be deleted: the write holds the workflow's row lock when it asks
 * which IPAs are deployed, so a deploy cannot commit in between unseen.
 */
export class WorkflowsService extends ResourceService<Workflow, NewWorkflow, WorkflowPatch> {
  readonly #starter: OperationStarter;

  constructor(uow: UnitOfWork, pager: KeysetPager, starter: OperationStarter) {
    super(uow, pager, {
      name: "workflows",
      repository: (tx) => tx.workflows,
      checkNew: (input) => checkSteps(input.steps, stepsPath),
      checkPatch: (patch) => {
        if (patch.steps !== undefined) checkSteps(patch.steps, stepsPath);
      },
      afterUpdate: async (tx, workflow, patch) => {
        if (patch.state !== undefined && workflow.state !== "active") {
          refuseWhileDeployed(`workflows/${workflow.id}`, `made ${workflow.state}`, await tx.ipas.deployedUsing({ workflowId: workflow.id }));
        }
      },
      afterDelete: async (tx, id) => refuseWhileDeployed(`workflows/${id}`, "deleted", await tx.ipas.deployedUsing({ workflowId: id })),
    });
    this.#starter = starter;
  }

  /** Every revision, newest first; NOT_FOUND when the workflow does not exist. */
  revisions(scope: Scope, id: string, page: PageRequest): Promise<Page<Workflow>> {
    return this.pager.page(scope, page, revisionsOf(id), (limit, after) =>
      this.uow.transact(scope, async (tx) => {
        const revisions = await tx.workflows.revisions(id, limit, after);
        // No rows: tell a missing workflow (NOT_FOUND) from a page past the end.
        if (revisions.length === 0) await tx.workflows.get(id);
        return revisions;
      }),
    );
  }

  /**
   * Starts a run: the operation and one task per step are written in this
   * transaction (so a rollback leaves nothing). The workflow is read without
   * a lock: the run copies its steps into its tasks, so an archive or delete
   * committing meanwhile simply comes after the run. (A FOR SHARE lock here
   * made every concurrent start of one workflow rewrite that row's
   * MultiXact, costing about 30% of start throughput.)
   */
  run(scope: Scope, id: string, requestId?: string): Promise<Operation> {
    const key = idempotencyKey("workflows.run", { id }, requestId);
    return this.uow.transact(scope, (tx) =>
      tx.idempotency.run(key, operationCodec, async () => this.#starter.start(scope, tx, workflowRunSpec(await tx.workflows.get(id)))),
    );
  }
}
