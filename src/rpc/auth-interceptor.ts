import type { Interceptor } from "@connectrpc/connect";
import { authOutcomeKey, type CallAuthenticator } from "./call-authenticator.js";
import { appliedLimitKey } from "./rate-limit-headers.js";
import { clientAddressKey, principalKey } from "./request-context.js";

/**
 * Authenticates and rate-limits every call (see CallAuthenticator) and
 * stores the principal, the client's address and the limit that applied in
 * the call's context values. When the transport already decided before
 * reading the body, that decision is applied; a refused call stops here,
 * before validation and the handler, whatever message it carries. A call
 * refused by its credential's rate limit keeps its verified principal in
 * the context, so whoever records the refusal knows whose it was.
 */
export function authInterceptor(authenticator: CallAuthenticator): Interceptor {
  return (next) => async (req) => {
    // No transport decided (an in-process transport): there is no socket, so no peer.
    const outcome = req.contextValues.get(authOutcomeKey) ?? (await authenticator.decide(req.method, req.header, undefined));
    req.contextValues.set(clientAddressKey, outcome.client);
    if (outcome.limit !== undefined) req.contextValues.set(appliedLimitKey, outcome.limit);
    if (outcome.principal !== undefined) req.contextValues.set(principalKey, outcome.principal);
    if ("refused" in outcome) throw outcome.refused;
    return next(req);
  };
}
