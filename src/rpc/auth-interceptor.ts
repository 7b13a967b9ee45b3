import type { Interceptor } from "@connectrpc/connect";
import type { TokenVerifier } from "../auth/token-verifier.js";
import type { MethodPolicies } from "./method-policies.js";
import { principalKey } from "./request-context.js";

/**
 * Authenticates every call to a non-public method from its bearer token and
 * stores the principal in the call's context values.
 */
export function authInterceptor(verifier: TokenVerifier, policies: MethodPolicies): Interceptor {
  return (next) => async (req) => {
    if (policies.get(req.method)?.public === true) return next(req);
    const principal = await verifier.verify(req.header.get("authorization"));
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
