import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  DeployIpaResponseSchema,
  ExecuteIpaResponseSchema,
  type Ipa as IpaMessage,
  IpaSchema,
  IpaService,
  Ipa_State,
  UndeployIpaResponseSchema,
} from "../../gen/anvil/ipas/v1/ipas_pb.js";
import { toOperationMessage } from "../operations/operation-messages.js";
import { enumMapping } from "../rpc/enum-mapping.js";
import { patchFromMask } from "../rpc/field-mask.js";
import { requestContext } from "../rpc/request-context.js";
import { type ResourceMessages, resourceMethods } from "../rpc/resource-methods.js";
import { etagOf } from "../shared/etag.js";
import { type Ipa, type IpaPatch, type NewIpa, updatableIpaFields } from "./ipa.js";
import type { IpaExecutionsService } from "./ipa-executions.service.js";
import type { IpasService } from "./ipas.service.js";

const states = enumMapping([
  [Ipa_State.DRAFT, "draft"],
  [Ipa_State.DEPLOYED, "deployed"],
  [Ipa_State.RETIRED, "retired"],
] as const);

/** IpaService over the wire: converts proto ⇄ domain and nothing else. */
export function ipasHandler(ipas: IpasService, executions: IpaExecutionsService): ServiceImpl<typeof IpaService> {
  return {
    ...resourceMethods(IpaService, ipas, ipaMessages),
    async deployIpa(req, ctx) {
      const ipa = await ipas.deploy(requestContext(ctx), req.id, req.etag || undefined);
      return create(DeployIpaResponseSchema, { ipa: toMessage(ipa) });
    },
    async undeployIpa(req, ctx) {
      const ipa = await ipas.undeploy(requestContext(ctx), req.id, req.etag || undefined);
      return create(UndeployIpaResponseSchema, { ipa: toMessage(ipa) });
    },
    async executeIpa(req, ctx) {
      const operation = await executions.execute(requestContext(ctx), req.id, req.requestId || undefined);
      return create(ExecuteIpaResponseSchema, { operation: toOperationMessage(operation) });
    },
  };
}

const ipaMessages: ResourceMessages<Ipa, NewIpa, IpaPatch, IpaMessage> = {
  schema: IpaSchema,
  toMessage,
  toNew: newIpa,
  toPatch: (sent, mask) => patchFromMask(mask, updatableIpaFields, newIpa(sent)),
};

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
