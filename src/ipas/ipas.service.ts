import { creationKeyset } from "../db/creation-order.js";
import { idempotencyKey } from "../db/idempotency-key.js";
import { jsonCodec } from "../db/idempotency.repository.js";
import type { Repositories } from "../db/repositories.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import { expectedVersion, staleEtag } from "../shared/etag.js";
import { FailedPreconditionError } from "../shared/errors.js";
import type { KeysetPager } from "../shared/keyset-pager.js";
import type { Page, PageRequest } from "../shared/pagination.js";
import type { Scope } from "../shared/scope.js";
import { agentStepKind } from "../workflows/workflow.js";
import { deploymentViolations } from "./deployment.js";
import { checkBindings, checkChangeable, type Ipa, type IpaPatch, type NewIpa } from "./ipa.js";

const ipaCodec = jsonCodec<Ipa>("createTime", "updateTime");
const allIpas = creationKeyset<Ipa>("ipas");

/** Where bindings sit in create and update requests, for naming bad ones. */
const bindingsPath = "ipa.agent_bindings";

/** The IPA use cases; each runs in one unit of work. */
export class IpasService {
  readonly #uow: UnitOfWork;
  readonly #pager: KeysetPager;

  constructor(uow: UnitOfWork, pager: KeysetPager) {
    this.#uow = uow;
    this.#pager = pager;
  }

  get(scope: Scope, id: string): Promise<Ipa> {
    return this.#uow.read(scope, (tx) => tx.ipas.get(id));
  }

  list(scope: Scope, page: PageRequest): Promise<Page<Ipa>> {
    return this.#pager.page(scope, page, allIpas, (limit, after) => this.#uow.read(scope, (tx) => tx.ipas.list(limit, after)));
  }

  create(scope: Scope, input: NewIpa, requestId?: string): Promise<Ipa> {
    checkBindings(input.agentBindings, bindingsPath);
    const key = idempotencyKey("ipas.create", input, requestId);
    return this.#uow.transact(scope, (tx) => tx.idempotency.run(key, ipaCodec, () => tx.ipas.create(input)));
  }

  update(scope: Scope, id: string, patch: IpaPatch, etag?: string): Promise<Ipa> {
    const version = expectedVersion(etag);
    if (patch.agentBindings !== undefined) checkBindings(patch.agentBindings, bindingsPath);
    return this.#uow.transact(scope, async (tx) => {
      checkChangeable(await locked(tx, id, version), patch);
      return tx.ipas.update(id, patch, version);
    });
  }

  delete(scope: Scope, id: string, etag?: string): Promise<void> {
    const version = expectedVersion(etag);
    return this.#uow.transact(scope, async (tx) => {
      checkChangeable(await locked(tx, id, version), "delete");
      await tx.ipas.delete(id, version);
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
    return this.#uow.transact(scope, async (tx) => {
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
    return this.#uow.transact(scope, async (tx) => {
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
