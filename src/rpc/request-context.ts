import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Context } from "@opentelemetry/api";
import type { ChangeAudit } from "../audit/audit-event.js";
import type { Principal, Tier } from "../auth/principal.js";
import { InternalError } from "../shared/errors.js";
import type { Caller } from "../shared/scope.js";

/** The verified caller, set by the auth interceptor. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "principal" });

/**
 * The client's address: the socket's peer, or behind a trusted proxy the
 * nearest untrusted X-Forwarded-For hop (src/rpc/client-address.ts). Set
 * for every call that reached the interceptors; `unknown` without a socket.
 */
export const clientAddressKey = createContextKey<string>("unknown", { description: "client address" });

/** The request's correlation id, set by the request-id interceptor. */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

/** The protocol a transport that is not connect's own serves the call over (`rest`); unset: read from the content type. */
export const protocolKey = createContextKey<string | undefined>(undefined, { description: "protocol" });

/** The call's trace context (its server span as active span), set by the transport's CallObserver when tracing is on. */
export const traceKey = createContextKey<Context | undefined>(undefined, { description: "trace context" });

/** The audit of a call that changes things, set by the audit interceptor for mutating methods. */
export const changeAuditKey = createContextKey<ChangeAudit | undefined>(undefined, { description: "change audit" });

/**
 * What handlers pass down: plain data about the caller and the request, no
 * transport objects.
 */
export interface RequestContext extends Caller {
  readonly principal: string;
  readonly requestId: string;
  /** The client's address (see clientAddressKey), for records of who did what from where. */
  readonly clientAddress: string;
  /** The caller's rate-limit tier (what work it sets up to run later, such as webhook deliveries, is limited by). */
  readonly tier: Tier;
}

/** Builds the plain request context from Connect's handler context. */
export function requestContext(ctx: HandlerContext): RequestContext {
  const principal = ctx.values.get(principalKey);
  if (principal === undefined) throw new InternalError("handler reached without an authenticated principal");
  const timeout = ctx.timeoutMs();
  return {
    principal: principal.subject,
    tenant: principal.tenant,
    roles: principal.roles,
    credential: principal.credential,
    requestId: ctx.values.get(requestIdKey),
    clientAddress: ctx.values.get(clientAddressKey),
    tier: principal.tier,
    deadline: timeout === undefined ? undefined : Date.now() + timeout,
    audit: ctx.values.get(changeAuditKey),
    trace: ctx.values.get(traceKey),
  };
}
