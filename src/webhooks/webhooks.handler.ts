import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type Webhook as WebhookMessage, WebhookSchema, WebhookService } from "../../gen/anvil/webhooks/v1/webhooks_pb.js";
import { patchFromMask } from "../rpc/field-mask.js";
import { type ResourceMessages, resourceMethods } from "../rpc/resource-methods.js";
import { etagOf } from "../shared/etag.js";
import { InvalidArgumentError } from "../shared/errors.js";
import { deliveryPath, type NewWebhook, updatableWebhookFields, type Webhook, type WebhookPatch, type WebhookTarget } from "./webhook.js";
import type { WebhooksService } from "./webhooks.service.js";

/** WebhookService over the wire: the standard methods, converting proto ⇄ domain and nothing else. */
export function webhooksHandler(webhooks: WebhooksService): ServiceImpl<typeof WebhookService> {
  return resourceMethods(WebhookService, webhooks, webhookMessages);
}

const webhookMessages: ResourceMessages<Webhook, NewWebhook, WebhookPatch, WebhookMessage> = {
  schema: WebhookSchema,
  toMessage,
  toNew: (m) => ({ displayName: m.displayName, target: targetOf(m) }),
  toPatch: (sent, mask) => {
    const patch = patchFromMask(mask, updatableWebhookFields, { displayName: sent.displayName, target: targetOf(sent) });
    if ("target" in patch) {
      // Naming a target path replaces the target: the message must carry one the mask names.
      const named = (mask?.paths ?? []).includes("*") || (mask?.paths ?? []).includes(patch.target?.kind ?? "");
      if (patch.target === undefined || !named) {
        throw InvalidArgumentError.field("webhook.target", "must be set to the target the update_mask names");
      }
    }
    return patch;
  },
  // The secret travels next to the endpoint, in the create's answer only.
  createdExtras: (webhook) => ({ secret: webhook.secret ?? "" }),
};

function targetOf(m: WebhookMessage): WebhookTarget | undefined {
  switch (m.target.case) {
    case "runWorkflow":
      return { kind: "run_workflow", workflowId: m.target.value.workflowId };
    case "executeIpa":
      return { kind: "execute_ipa", ipaId: m.target.value.ipaId };
    case "correlateAlert":
      return { kind: "correlate_alert", maxResults: m.target.value.maxResults };
    default:
      return undefined;
  }
}

function targetMessage(target: WebhookTarget): WebhookMessage["target"] {
  switch (target.kind) {
    case "run_workflow":
      return { case: "runWorkflow", value: { $typeName: "anvil.webhooks.v1.Webhook.RunWorkflowTarget", workflowId: target.workflowId } };
    case "execute_ipa":
      return { case: "executeIpa", value: { $typeName: "anvil.webhooks.v1.Webhook.ExecuteIpaTarget", ipaId: target.ipaId } };
    case "correlate_alert":
      return { case: "correlateAlert", value: { $typeName: "anvil.webhooks.v1.Webhook.CorrelateAlertTarget", maxResults: target.maxResults } };
  }
}

function toMessage(webhook: Webhook): WebhookMessage {
  return create(WebhookSchema, {
    id: webhook.id,
    displayName: webhook.displayName,
    target: targetMessage(webhook.target),
    deliveryPath: deliveryPath(webhook.id),
    creator: webhook.creator,
    etag: etagOf(webhook.version),
    createTime: timestampFromDate(webhook.createTime),
    updateTime: timestampFromDate(webhook.updateTime),
  });
}
