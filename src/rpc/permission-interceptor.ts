import type { Interceptor } from "@connectrpc/connect";
import { rolesGrant } from "../auth/roles.js";
import { InternalError, PermissionDeniedError } from "../shared/errors.js";
import type { MethodPolicies } from "./method-policies.js";
import { principalKey } from "./request-context.js";

/**
 * Enforces the permission each method declares in its proto, for every
 * service alike. Runs after authentication and before validation, so an
 * unauthorized caller learns nothing about a request's shape.
 */
export function permissionInterceptor(policies: MethodPolicies): Interceptor {
  return (next) => async (req) => {
    const policy = policies.get(req.method);
    // Start-up refuses undeclared methods; reaching here without a policy is a bug.
    if (policy === undefined) throw new InternalError(`no policy for ${req.method.name}`);
    if (policy.public) return next(req);
    const principal = req.contextValues.get(principalKey);
    if (principal === undefined || !rolesGrant(principal.roles, policy.permission)) {
      throw new PermissionDeniedError(`permission ${policy.permission} required`, { permission: policy.permission });
    }
    return next(req);
  };
}
