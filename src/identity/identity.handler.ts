import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { Caller_CredentialKind, CallerSchema, IdentityService } from "../../gen/anvil/identity/v1/identity_pb.js";
import type { CredentialKind } from "../auth/principal.js";
import { rolesGrant } from "../auth/roles.js";
import { InternalError } from "../shared/errors.js";
import { principalKey } from "../rpc/request-context.js";

const credentialKinds: Readonly<Record<CredentialKind, Caller_CredentialKind>> = {
  api_key: Caller_CredentialKind.API_KEY,
  service_account: Caller_CredentialKind.SERVICE_ACCOUNT,
  oidc: Caller_CredentialKind.OIDC,
};

/**
 * IdentityService over the wire: the authenticated caller as the gateway sees
 * it, with the permissions its roles grant among `declared` (every permission
 * the served methods declare), so clients offer only what will be allowed.
 */
export function identityHandler(declared: ReadonlySet<string>): ServiceImpl<typeof IdentityService> {
  const permissions = [...declared].sort();
  return {
    getCaller(_req, ctx) {
      const caller = ctx.values.get(principalKey);
      if (caller === undefined) throw new InternalError("handler reached without an authenticated principal");
      return {
        caller: create(CallerSchema, {
          subject: caller.subject,
          tenant: caller.tenant,
          roles: [...caller.roles],
          permissions: permissions.filter((p) => rolesGrant(caller.roles, p)),
          credentialKind: credentialKinds[caller.credential.kind],
        }),
      };
    },
  };
}
