import { rolesGrant } from "../auth/roles.js";
import { jsonCodec, type ResultCodec } from "../db/idempotency.repository.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import { InvalidArgumentError, PermissionDeniedError } from "../shared/errors.js";
import type { KeysetPager } from "../shared/keyset-pager.js";
import { ResourceService } from "../shared/resource-service.js";
import { type NewWebhook, targetPermissions, type Webhook, type WebhookOwner, type WebhookPatch, type WebhookTarget } from "./webhook.js";

/**
 * The webhook endpoint use cases. An endpoint's deliveries act as the
 * credential that created it, so it may only point at work that credential
 * could start itself. A create answers with the signing secret; its stored
 * replay never holds it.
 */
export class WebhooksService extends ResourceService<Webhook, NewWebhook, WebhookPatch, WebhookOwner> {
  constructor(uow: UnitOfWork, pager: KeysetPager) {
    super(uow, pager, {
      name: "webhooks",
      repository: (tx, owner) => tx.webhooks.ownedBy(owner),
      checkNew: (input, owner) => {
        if (input.target === undefined) {
          throw InvalidArgumentError.field("webhook.target", "must set one of run_workflow, execute_ipa, correlate_alert");
        }
        checkTarget(input.target, owner);
      },
      replayCodec: withoutSecret,
    });
  }

  /** Updates an endpoint; a new target must be one the updating caller may start too. */
  override update(owner: WebhookOwner, id: string, patch: WebhookPatch, etag?: string): Promise<Webhook> {
    if (patch.target !== undefined) checkTarget(patch.target, owner);
    return super.update(owner, id, patch, etag);
  }
}

function checkTarget(target: WebhookTarget, owner: WebhookOwner): void {
  const permission = targetPermissions[target.kind];
  if (!rolesGrant(owner.roles, permission)) {
    throw new PermissionDeniedError(`a webhook whose target is ${target.kind} needs ${permission}, which the caller lacks`);
  }
}

const dated = jsonCodec<Webhook>("createTime", "updateTime");

/** Stores a created endpoint for replays without its secret, so a retry never shows it. */
const withoutSecret: ResultCodec<Webhook> = {
  toJson: ({ secret: _secret, ...webhook }) => webhook,
  fromJson: (json) => dated.fromJson(json),
};
