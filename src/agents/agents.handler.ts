import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type Agent as AgentMessage,
  AgentSchema,
  type AgentService,
  Agent_State,
  type CreateAgentRequest,
  type CreateAgentResponse,
  CreateAgentResponseSchema,
  type DeleteAgentRequest,
  type DeleteAgentResponse,
  DeleteAgentResponseSchema,
  type GetAgentRequest,
  type GetAgentResponse,
  GetAgentResponseSchema,
  type ListAgentsRequest,
  type ListAgentsResponse,
  ListAgentsResponseSchema,
  type UpdateAgentRequest,
  type UpdateAgentResponse,
  UpdateAgentResponseSchema,
} from "../../gen/anvil/agents/v1/agents_pb.js";
import { enumMapping } from "../rpc/enum-mapping.js";
import { patchFromMask } from "../rpc/field-mask.js";
import { requestContext } from "../rpc/request-context.js";
import { etagOf } from "../shared/etag.js";
import { type Agent, type NewAgent, updatableAgentFields } from "./agent.js";
import type { AgentsService } from "./agents.service.js";

const states = enumMapping([
  [Agent_State.ENABLED, "enabled"],
  [Agent_State.DISABLED, "disabled"],
] as const);

/** AgentService over the wire: converts proto ⇄ domain and nothing else. */
export class AgentsHandler implements ServiceImpl<typeof AgentService> {
  readonly #agents: AgentsService;

  constructor(agents: AgentsService) {
    this.#agents = agents;
  }

  async getAgent(req: GetAgentRequest, ctx: HandlerContext): Promise<GetAgentResponse> {
    const agent = await this.#agents.get(requestContext(ctx), req.id);
    return create(GetAgentResponseSchema, { agent: toMessage(agent) });
  }

  async listAgents(req: ListAgentsRequest, ctx: HandlerContext): Promise<ListAgentsResponse> {
    const page = await this.#agents.list(requestContext(ctx), { pageSize: req.pageSize, pageToken: req.pageToken });
    return create(ListAgentsResponseSchema, { agents: page.items.map(toMessage), nextPageToken: page.nextPageToken });
  }

  async createAgent(req: CreateAgentRequest, ctx: HandlerContext): Promise<CreateAgentResponse> {
    const agent = await this.#agents.create(requestContext(ctx), newAgent(req.agent!), req.requestId || undefined);
    return create(CreateAgentResponseSchema, { agent: toMessage(agent) });
  }

  async updateAgent(req: UpdateAgentRequest, ctx: HandlerContext): Promise<UpdateAgentResponse> {
    const sent = req.agent!;
    const patch = patchFromMask(req.updateMask, updatableAgentFields, {
      displayName: sent.displayName,
      model: sent.model,
      instructions: sent.instructions,
      tools: sent.tools,
      config: sent.config ?? {},
      state: states.toDomain(sent.state),
    });
    if ("state" in patch) patch.state = states.required(sent.state, "agent.state");
    const agent = await this.#agents.update(requestContext(ctx), sent.id, patch, sent.etag || undefined);
    return create(UpdateAgentResponseSchema, { agent: toMessage(agent) });
  }

  async deleteAgent(req: DeleteAgentRequest, ctx: HandlerContext): Promise<DeleteAgentResponse> {
    await this.#agents.delete(requestContext(ctx), req.id, req.etag || undefined);
    return create(DeleteAgentResponseSchema);
  }
}

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
