import { createHash } from "node:crypto";
import type { Principal } from "../auth/principal.js";
import { rolesGrant } from "../auth/roles.js";
import { PermissionDeniedError, UnauthenticatedError } from "../shared/errors.js";
import { targetPermissions } from "./webhook.js";
import type { WebhookEndpoint } from "./webhook-endpoint.repository.js";

/** How far a delivery's `webhook-timestamp` may be from now, either way (Standard Webhooks' tolerance). */
export const deliveryToleranceMs = 5 * 60 * 1000;

/**
 * The request id a delivery starts its work with: a UUID derived from the
 * endpoint and the sender's `webhook-id`, so every replay of one delivery
 * names the same idempotency record (`idempotency_keys`, tenant-scoped,
 * expired by housekeeping after the idempotency window). The window (24 h by
 * default) far outlasts the five minutes a signed timestamp is accepted, so
 * no replay can outlive its record.
 */
export function deliveryRequestId(webhookId: string, deliveryId: string): string {
  const hash = createHash("sha256").update(`anvil.webhooks.delivery\n${webhookId}\n${deliveryId}`).digest();
  // RFC 9562 UUIDv8 (custom): version 8, variant 10.
  hash[6] = (hash[6]! & 0x0f) | 0x80;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Why a delivery's headers are refused before its body is read, or
 * undefined when they may be read on: all three Standard Webhooks headers
 * present and the timestamp within the tolerance of `now`.
 */
export function headerProblem(id: string | undefined, timestamp: string | undefined, signature: string | undefined, now: number): string | undefined {
  if (!id || !timestamp || !signature) return "webhook-id, webhook-timestamp and webhook-signature are required";
  if (id.length > 256) return "webhook-id is longer than 256 characters";
  if (!/^\d{1,12}$/.test(timestamp)) return "webhook-timestamp must be seconds since the epoch";
  if (Math.abs(Number(timestamp) * 1000 - now) > deliveryToleranceMs) return "webhook-timestamp is more than 5 minutes from now";
  return undefined;
}

/** The principal a delivery acts as: its endpoint's creator, with the roles and tier it had at creation. See actingCreator. */
export function deliveryPrincipal(endpoint: WebhookEndpoint): Principal {
  const colon = endpoint.creator.indexOf(":");
  const credential = { kind: endpoint.creator.slice(0, colon), id: endpoint.creator.slice(colon + 1) } as Principal["credential"];
  // Logs and limits name the credential; the subject says the call came through the endpoint.
  return { subject: `webhooks/${endpoint.id}`, tenant: endpoint.tenant, roles: endpoint.roles, credential, tier: endpoint.tier };
}


/** Rechecks a stored principal's credential as it stands now (Authenticator.current). */
export interface CredentialRecheck {
  current(earlier: Principal): Promise<Principal>;
}

/**
 * The principal a delivery acts as: its endpoint's creator as the
 * creator's credential stands now (see Authenticator.current), never with
 * more roles than it had at creation. PERMISSION_DENIED, naming the creator
 * and why, when that credential was revoked, expired or removed, or no
 * longer grants what the target needs: the sender's signature is fine — a
 * 401 would tell it to fix credentials it cannot fix — it is the endpoint
 * that may no longer act, until someone who may recreates it.
 */
export async function actingCreator(endpoint: WebhookEndpoint, credentials: CredentialRecheck): Promise<Principal> {
  let now: Principal;
  try {
    now = await credentials.current(deliveryPrincipal(endpoint));
  } catch (err) {
    if (!(err instanceof UnauthenticatedError)) throw err;
    const why = err.cause instanceof Error ? err.cause.message : "invalid credentials";
    throw new PermissionDeniedError(`webhook ${endpoint.id} acts as ${endpoint.creator}, which can no longer act (${why}); recreate the webhook with a valid credential`, {
      creator: endpoint.creator,
    });
  }
  const permission = targetPermissions[endpoint.target.kind];
  if (!rolesGrant(now.roles, permission)) {
    throw new PermissionDeniedError(`webhook ${endpoint.id} acts as ${endpoint.creator}, which no longer holds ${permission}; recreate the webhook with a credential that does`, {
      creator: endpoint.creator,
      permission,
    });
  }
  return now;
}
