import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { GetSignInOptionsResponseSchema, type SignInService } from "../../gen/anvil/identity/v1/identity_pb.js";
import type { OidcOptions } from "../auth/oidc-verifier.js";

/**
 * SignInService over the wire: what the console needs to offer single sign-on
 * before anyone is signed in — the provider's issuer, the console's client id
 * and its scopes — or nothing when OIDC or the console client is not configured.
 * Read from configuration once; the answer never depends on the caller.
 */
export function signInHandler(oidc: OidcOptions | undefined): ServiceImpl<typeof SignInService> {
  const response = create(GetSignInOptionsResponseSchema, {
    oidc:
      oidc?.consoleClientId === undefined
        ? undefined
        : { issuer: oidc.issuer, clientId: oidc.consoleClientId, scopes: [...(oidc.consoleScopes ?? ["openid"])] },
  });
  return {
    getSignInOptions: () => response,
  };
}
