import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { ChangeAudit } from "../audit/audit-event.js";
import type { Principal } from "../auth/principal.js";
import { InternalError } from "../shared/errors.js";
import type { Caller } from "../shared/scope.js";

/** The verified caller, set by the auth interceptor. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "principal" });

/** The request's correlation id, set by the request-id interceptor. */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

/**
 * The client's network address, set by the transport from the connection
 * (see src/server/client-address.ts, the one place that decides it).
 */
export const clientAddressKey = createContextKey<string>("", { description: "client address" });

/** The protocol a transport that is not connect's own serves the call over (`rest`); unset: read from the content type. */
export const protocolKey = createContextKey<string | undefined>(undefined, { description: "protocol" });

/** The audit of a call that changes things, set by the audit interceptor for mutating methods. */
export const changeAuditKey = createContextKey<ChangeAudit | undefined>(undefined, { description: "change audit" });

/**
 * What handlers pass down: plain data about the caller and the request, no
 * transport objects.
 */
export interface RequestContext extends Caller {
  readonly principal: string;
  readonly requestId: string;
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
    deadline: timeout === undefined ? undefined : Date.now() + timeout,
    audit: ctx.values.get(changeAuditKey),
  };
}
