import type { Interceptor } from "@connectrpc/connect";
import { authOutcomeKey, type CallAuthenticator } from "./call-authenticator.js";
import { principalKey } from "./request-context.js";

/**
 * Authenticates every call to a non-public method from its bearer token and
 * stores the principal in the call's context values. When the transport
 * already decided before reading the body (see CallAuthenticator), that
 * decision is applied; a refused call stops here, before validation and the
 * handler, whatever message it carries.
 */
export function authInterceptor(authenticator: CallAuthenticator): Interceptor {
  return (next) => async (req) => {
    const outcome = req.contextValues.get(authOutcomeKey) ?? (await authenticator.decide(req.method, req.header));
    if ("refused" in outcome) throw outcome.refused;
    if (outcome.principal !== undefined) req.contextValues.set(principalKey, outcome.principal);
    return next(req);
  };
}
