import type { DescMethod } from "@bufbuild/protobuf";
import { createContextKey } from "@connectrpc/connect";
import type { Authenticator, HeaderSource } from "../auth/authenticator.js";
import type { Principal } from "../auth/principal.js";
import type { MethodPolicies } from "./method-policies.js";

/**
 * Whether a call may proceed, decided from its method and headers alone:
 * the caller (none for a public method), or why it is refused.
 */
export type AuthOutcome = { readonly principal: Principal | undefined } | { readonly refused: unknown };

/**
 * The outcome a transport decided before reading the request body, for the
 * auth interceptor to apply instead of deciding again. Only server code sets
 * context values; a client cannot.
 */
export const authOutcomeKey = createContextKey<AuthOutcome | undefined>(undefined, { description: "authentication decided before the body" });

/**
 * Authenticates calls: the one place that decides, from a method's policy
 * and the request headers (see Authenticator for the credential kinds), who calls. The auth interceptor applies
 * it; the transports (fast unary path, connect's universal handler, REST)
 * run it before they read a request body, so an unauthenticated caller
 * cannot make the server read and buffer bodies — it is answered from its
 * headers.
 */
export class CallAuthenticator {
  readonly #authenticator: Authenticator;
  readonly #policies: MethodPolicies;

  constructor(authenticator: Authenticator, policies: MethodPolicies) {
    this.#authenticator = authenticator;
    this.#policies = policies;
  }

  /** Decides a call of `method` with these request headers; never throws. */
  async decide(method: DescMethod, headers: HeaderSource): Promise<AuthOutcome> {
    if (this.#policies.get(method)?.public === true) return { principal: undefined };
    try {
      return { principal: await this.#authenticator.authenticate(headers) };
    } catch (err) {
      return { refused: err };
    }
  }
}
