import { creationKeyset } from "../db/creation-order.js";
import { idempotencyKey } from "../db/idempotency-key.js";
import { jsonCodec } from "../db/idempotency.repository.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import { refuseWhileDeployed } from "../ipas/ipa.js";
import { expectedVersion } from "../shared/etag.js";
import type { KeysetPager } from "../shared/keyset-pager.js";
import type { Page, PageRequest } from "../shared/pagination.js";
import type { Scope } from "../shared/scope.js";
import type { Agent, AgentPatch, NewAgent } from "./agent.js";

const agentCodec = jsonCodec<Agent>("createTime", "updateTime");
const allAgents = creationKeyset<Agent>("agents");

/** The agents use cases; each runs in one unit of work. */
export class AgentsService {
  readonly #uow: UnitOfWork;
  readonly #pager: KeysetPager;

  constructor(uow: UnitOfWork, pager: KeysetPager) {
    this.#uow = uow;
    this.#pager = pager;
  }

  get(scope: Scope, id: string): Promise<Agent> {
    return this.#uow.read(scope, (tx) => tx.agents.get(id));
  }

  list(scope: Scope, page: PageRequest): Promise<Page<Agent>> {
    return this.#pager.page(scope, page, allAgents, (limit, after) => this.#uow.read(scope, (tx) => tx.agents.list(limit, after)));
  }

  create(scope: Scope, input: NewAgent, requestId?: string): Promise<Agent> {
    const key = idempotencyKey("agents.create", input, requestId);
    return this.#uow.transact(scope, (tx) => tx.idempotency.run(key, agentCodec, () => tx.agents.create(input)));
  }

  /**
   * Applies the patch. Disabling an agent that deployed IPAs bind is
   * refused; the update holds the agent's row lock when it asks, so a
   * concurrent deploy either finished first (and is seen) or waits and then
   * finds the agent disabled.
   */
  update(scope: Scope, id: string, patch: AgentPatch, etag?: string): Promise<Agent> {
    const version = expectedVersion(etag);
    return this.#uow.transact(scope, async (tx) => {
      const agent = await tx.agents.update(id, patch, version);
      if (patch.state === "disabled") refuseWhileDeployed(`agents/${id}`, "disabled", await tx.ipas.deployedUsing({ agentId: id }));
      return agent;
    });
  }

  /** Deletes first (taking the row lock), then refuses — rolling back — if a deployed IPA binds it. */
  delete(scope: Scope, id: string, etag?: string): Promise<void> {
    const version = expectedVersion(etag);
    return this.#uow.transact(scope, async (tx) => {
      await tx.agents.delete(id, version);
      refuseWhileDeployed(`agents/${id}`, "deleted", await tx.ipas.deployedUsing({ agentId: id }));
    });
  }
}
