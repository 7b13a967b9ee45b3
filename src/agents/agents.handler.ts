import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type Agent as AgentMessage, AgentSchema, AgentService, Agent_State } from "../../gen/anvil/agents/v1/agents_pb.js";
import { enumMapping } from "../rpc/enum-mapping.js";
import { patchFromMask } from "../rpc/field-mask.js";
import { type ResourceMessages, resourceMethods } from "../rpc/resource-methods.js";
import { etagOf } from "../shared/etag.js";
import { type Agent, type AgentPatch, type NewAgent, updatableAgentFields } from "./agent.js";
import type { AgentsService } from "./agents.service.js";

const states = enumMapping([
  [Agent_State.ENABLED, "enabled"],
  [Agent_State.DISABLED, "disabled"],
] as const);

/** AgentService over the wire: the standard methods, converting proto ⇄ domain and nothing else. */
export function agentsHandler(agents: AgentsService): ServiceImpl<typeof AgentService> {
  return resourceMethods(AgentService, agents, agentMessages);
}

const agentMessages: ResourceMessages<Agent, NewAgent, AgentPatch, AgentMessage> = {
  schema: AgentSchema,
  toMessage,
  toNew: newAgent,
  toPatch: (sent, mask) => {
    const patch = patchFromMask(mask, updatableAgentFields, {
      displayName: sent.displayName,
      model: sent.model,
      instructions: sent.instructions,
      tools: sent.tools,
      config: sent.config ?? {},
      state: states.toDomain(sent.state),
    });
    if ("state" in patch) patch.state = states.required(sent.state, "agent.state");
    return patch;
  },
};

function newAgent(m: AgentMessage): NewAgent {
  return {
    displayName: m.displayName,
    model: m.model,
    instructions: m.instructions,
    tools: m.tools,
    config: m.config ?? {},
    state: states.toDomain(m.state) ?? "enabled",
  };
}

function toMessage(agent: Agent): AgentMessage {
  return create(AgentSchema, {
    id: agent.id,
    displayName: agent.displayName,
    model: agent.model,
    instructions: agent.instructions,
    tools: [...agent.tools],
    config: agent.config,
    state: states.toMessage(agent.state),
    etag: etagOf(agent.version),
    createTime: timestampFromDate(agent.createTime),
    updateTime: timestampFromDate(agent.updateTime),
  });
}
