import type { Repositories } from "../db/repositories.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import { expectedVersion, staleEtag } from "../shared/etag.js";
import { FailedPreconditionError } from "../shared/errors.js";
import type { KeysetPager } from "../shared/keyset-pager.js";
import { ResourceService } from "../shared/resource-service.js";
import type { Scope } from "../shared/scope.js";
import { agentStepKind } from "../workflows/workflow.js";
import { deploymentViolations } from "./deployment.js";
import { checkBindings, checkChangeable, type Ipa, type IpaPatch, type NewIpa } from "./ipa.js";

/** Where bindings sit in create and update requests, for naming bad ones. */
const bindingsPath = "ipa.agent_bindings";

/**
 * The IPA use cases, each in one unit of work. Every change of an IPA first
 * locks it and checks that its state allows the change.
 */
export class IpasService extends ResourceService<Ipa, NewIpa, IpaPatch> {
  constructor(uow: UnitOfWork, pager: KeysetPager) {
    super(uow, pager, {
      name: "ipas",
      repository: (tx) => tx.ipas,
      checkNew: (input) => checkBindings(input.agentBindings, bindingsPath),
      checkPatch: (patch) => {
        if (patch.agentBindings !== undefined) checkBindings(patch.agentBindings, bindingsPath);
      },
      beforeChange: async (tx, id, version, change) => checkChangeable(await locked(tx, id, version), change),
    });
  }

  /**
   * Checks everything deploy requires and deploys, in one transaction. The
   * workflow and the bound agents are read FOR SHARE: until this commits, a
   * concurrent archive, disable or delete waits — and then sees this IPA
   * deployed and refuses; one that got there first has already committed,
   * and this sees its result. Either way no deployed IPA is left pointing at
   * a missing or unusable workflow or agent.
   */
  deploy(scope: Scope, id: string, etag?: string): Promise<Ipa> {
    const version = expectedVersion(etag);
    return this.uow.transact(scope, async (tx) => {
      const ipa = await locked(tx, id, version);
      const workflow = await tx.workflows.findShared(ipa.workflowId);
      const agents = await tx.agents.getShared(Object.values(ipa.agentBindings));
      const violations = deploymentViolations(ipa, workflow, agents, agentStepKind);
      // A missing workflow is always a violation; `!workflow` only tells the compiler so.
      if (violations.length > 0 || !workflow) {
        throw new FailedPreconditionError(
          `IPA ${id} cannot be deployed: ${violations.map((v) => `${v.type} ${v.subject}`).join(", ")}`,
          violations,
        );
      }
      return tx.ipas.setState(id, "deployed", workflow.revision, undefined);
    });
  }

  /** Retires a deployed IPA, releasing its workflow and agents. */
  undeploy(scope: Scope, id: string, etag?: string): Promise<Ipa> {
    const version = expectedVersion(etag);
    return this.uow.transact(scope, async (tx) => {
      const ipa = await locked(tx, id, version);
      if (ipa.state !== "deployed") {
        throw new FailedPreconditionError(`IPA ${id} is not deployed`, [
          { type: "IPA_NOT_DEPLOYED", subject: `ipas/${id}`, description: `the IPA is ${ipa.state}, not deployed` },
        ]);
      }
      return tx.ipas.setState(id, "retired", undefined, undefined);
    });
  }
}

/**
 * The IPA locked FOR UPDATE, its etag checked: every change of an IPA
 * starts here, so checks made on it hold until the transaction ends.
 */
async function locked(tx: Repositories, id: string, version: number | undefined): Promise<Ipa> {
  const ipa = await tx.ipas.get(id, "update");
  if (version !== undefined && ipa.version !== version) throw staleEtag();
  return ipa;
}
