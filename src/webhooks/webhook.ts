import type { Tier } from "../auth/principal.js";

/** What a delivery to an endpoint does: start one of the existing use cases. */
export type WebhookTarget =
  | { readonly kind: "run_workflow"; readonly workflowId: string }
  | { readonly kind: "execute_ipa"; readonly ipaId: string }
  | { readonly kind: "correlate_alert"; readonly maxResults: number };

/** A webhook endpoint of a tenant, as the domain sees it. Never holds its signing key, except `secret` right after creation. */
export interface Webhook {
  readonly id: string;
  readonly displayName: string;
  readonly target: WebhookTarget;
  /** `kind:id` of the credential that created the endpoint; deliveries act as it. */
  readonly creator: string;
  readonly version: number;
  readonly createTime: Date;
  readonly updateTime: Date;
  /** The signing secret (`whsec_…`), only in the answer of the create that made the endpoint; never replayed. */
  readonly secret?: string;
}

/** What a caller decides when creating an endpoint (a missing target is refused by the service). */
export interface NewWebhook {
  readonly displayName: string;
  readonly target: WebhookTarget | undefined;
}

/** The changes an update can make. */
export interface WebhookPatch {
  displayName?: string;
  target?: WebhookTarget;
}

/** Who creates an endpoint: its deliveries act with this credential's roles and tier, as they are now. */
export interface WebhookOwner {
  readonly tenant: string;
  readonly roles: readonly string[];
  readonly credential: { readonly kind: string; readonly id: string };
  readonly tier: Tier;
}

/** Field-mask paths an update may name, and the patch field each sets. */
export const updatableWebhookFields = {
  display_name: "displayName",
  run_workflow: "target",
  execute_ipa: "target",
  correlate_alert: "target",
} as const;

/** The permission a delivery to each kind of target needs: that of the RPC it calls. */
export const targetPermissions: Readonly<Record<WebhookTarget["kind"], string>> = {
  run_workflow: "workflows.write",
  execute_ipa: "ipas.write",
  correlate_alert: "findings.read",
};

/** The path deliveries to endpoint `id` are POSTed to. */
export function deliveryPath(id: string): string {
  return `/hooks/${id}`;
}
