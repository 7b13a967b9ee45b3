import { createHash } from "node:crypto";
import type { Principal } from "../auth/principal.js";
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

/** The principal a delivery acts as: its endpoint's creator, with the roles and tier it had at creation. */
export function deliveryPrincipal(endpoint: WebhookEndpoint): Principal {
  const colon = endpoint.creator.indexOf(":");
  const credential = { kind: endpoint.creator.slice(0, colon), id: endpoint.creator.slice(colon + 1) } as Principal["credential"];
  // Logs and limits name the credential; the subject says the call came through the endpoint.
  return { subject: `webhooks/${endpoint.id}`, tenant: endpoint.tenant, roles: endpoint.roles, credential, tier: endpoint.tier };
}

