import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type CreateIpaRequest,
  type CreateIpaResponse,
  CreateIpaResponseSchema,
  type DeleteIpaRequest,
  type DeleteIpaResponse,
  DeleteIpaResponseSchema,
  type DeployIpaRequest,
  type DeployIpaResponse,
  DeployIpaResponseSchema,
  type ExecuteIpaRequest,
  type ExecuteIpaResponse,
  ExecuteIpaResponseSchema,
  type GetIpaRequest,
  type GetIpaResponse,
  GetIpaResponseSchema,
  type Ipa as IpaMessage,
  IpaSchema,
  type IpaService,
  Ipa_State,
  type ListIpasRequest,
  type ListIpasResponse,
  ListIpasResponseSchema,
  type UndeployIpaRequest,
  type UndeployIpaResponse,
  UndeployIpaResponseSchema,
  type UpdateIpaRequest,
  type UpdateIpaResponse,
  UpdateIpaResponseSchema,
} from "../../gen/anvil/ipas/v1/ipas_pb.js";
import { toOperationMessage } from "../operations/operation-messages.js";
import { enumMapping } from "../rpc/enum-mapping.js";
import { patchFromMask } from "../rpc/field-mask.js";
import { requestContext } from "../rpc/request-context.js";
import { etagOf } from "../shared/etag.js";
import { type Ipa, type NewIpa, updatableIpaFields } from "./ipa.js";
import type { IpaExecutionsService } from "./ipa-executions.service.js";
import type { IpasService } from "./ipas.service.js";

const states = enumMapping([
  [Ipa_State.DRAFT, "draft"],
  [Ipa_State.DEPLOYED, "deployed"],
  [Ipa_State.RETIRED, "retired"],
] as const);

/** IpaService over the wire: converts proto ⇄ domain and nothing else. */
export class IpasHandler implements ServiceImpl<typeof IpaService> {
  readonly #ipas: IpasService;
  readonly #executions: IpaExecutionsService;

  constructor(ipas: IpasService, executions: IpaExecutionsService) {
    this.#ipas = ipas;
    this.#executions = executions;
  }

  async getIpa(req: GetIpaRequest, ctx: HandlerContext): Promise<GetIpaResponse> {
    const ipa = await this.#ipas.get(requestContext(ctx), req.id);
    return create(GetIpaResponseSchema, { ipa: toMessage(ipa) });
  }

  async listIpas(req: ListIpasRequest, ctx: HandlerContext): Promise<ListIpasResponse> {
    const page = await this.#ipas.list(requestContext(ctx), { pageSize: req.pageSize, pageToken: req.pageToken });
    return create(ListIpasResponseSchema, { ipas: page.items.map(toMessage), nextPageToken: page.nextPageToken });
  }

  async createIpa(req: CreateIpaRequest, ctx: HandlerContext): Promise<CreateIpaResponse> {
    const ipa = await this.#ipas.create(requestContext(ctx), newIpa(req.ipa!), req.requestId || undefined);
    return create(CreateIpaResponseSchema, { ipa: toMessage(ipa) });
  }

  async updateIpa(req: UpdateIpaRequest, ctx: HandlerContext): Promise<UpdateIpaResponse> {
    const sent = req.ipa!;
    const patch = patchFromMask(req.updateMask, updatableIpaFields, newIpa(sent));
    const ipa = await this.#ipas.update(requestContext(ctx), sent.id, patch, sent.etag || undefined);
    return create(UpdateIpaResponseSchema, { ipa: toMessage(ipa) });
  }

  async deleteIpa(req: DeleteIpaRequest, ctx: HandlerContext): Promise<DeleteIpaResponse> {
    await this.#ipas.delete(requestContext(ctx), req.id, req.etag || undefined);
    return create(DeleteIpaResponseSchema);
  }

  async deployIpa(req: DeployIpaRequest, ctx: HandlerContext): Promise<DeployIpaResponse> {
    const ipa = await this.#ipas.deploy(requestContext(ctx), req.id, req.etag || undefined);
    return create(DeployIpaResponseSchema, { ipa: toMessage(ipa) });
  }

  async undeployIpa(req: UndeployIpaRequest, ctx: HandlerContext): Promise<UndeployIpaResponse> {
    const ipa = await this.#ipas.undeploy(requestContext(ctx), req.id, req.etag || undefined);
    return create(UndeployIpaResponseSchema, { ipa: toMessage(ipa) });
  }

  async executeIpa(req: ExecuteIpaRequest, ctx: HandlerContext): Promise<ExecuteIpaResponse> {
    const operation = await this.#executions.execute(requestContext(ctx), req.id, req.requestId || undefined);
    return create(ExecuteIpaResponseSchema, { operation: toOperationMessage(operation) });
  }
}

function newIpa(m: IpaMessage): NewIpa {
  return { displayName: m.displayName, workflowId: m.workflowId, agentBindings: { ...m.agentBindings } };
}

function toMessage(ipa: Ipa): IpaMessage {
  return create(IpaSchema, {
    id: ipa.id,
    displayName: ipa.displayName,
    workflowId: ipa.workflowId,
    agentBindings: { ...ipa.agentBindings },
    state: states.toMessage(ipa.state),
    deployedRevision: ipa.deployedRevision ?? 0,
    etag: etagOf(ipa.version),
    createTime: timestampFromDate(ipa.createTime),
    updateTime: timestampFromDate(ipa.updateTime),
  });
}
