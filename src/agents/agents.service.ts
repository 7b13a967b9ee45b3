import type { UnitOfWork } from "../db/unit-of-work.js";
import { refuseWhileDeployed } from "../ipas/ipa.js";
import type { KeysetPager } from "../shared/keyset-pager.js";
import { ResourceService } from "../shared/resource-service.js";
import type { Agent, AgentPatch, NewAgent } from "./agent.js";

/**
 * The agents use cases, each in one unit of work. An agent that deployed
 * IPAs bind can be neither disabled nor deleted: the write takes the agent's
 * row lock before it asks, so a concurrent deploy either finished first (and
 * is seen) or waits and then finds the agent disabled or gone.
 */
export class AgentsService extends ResourceService<Agent, NewAgent, AgentPatch> {
  constructor(uow: UnitOfWork, pager: KeysetPager) {
    super(uow, pager, {
      name: "agents",
      repository: (tx) => tx.agents,
      afterUpdate: async (tx, agent, patch) => {
        if (patch.state === "disabled") {
          refuseWhileDeployed(`agents/${agent.id}`, "disabled", await tx.ipas.deployedUsing({ agentId: agent.id }));
        }
      },
      afterDelete: async (tx, id) => refuseWhileDeployed(`agents/${id}`, "deleted", await tx.ipas.deployedUsing({ agentId: id })),
    });
  }
}
