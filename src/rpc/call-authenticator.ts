import type { DescMethod } from "@bufbuild/protobuf";
import { createContextKey } from "@connectrpc/connect";
import { type Authenticator, header, type HeaderSource } from "../auth/authenticator.js";
import type { Principal } from "../auth/principal.js";
import type { LimitResult, RateLimiter } from "../limits/rate-limiter.js";
import { RateLimitedError, UnauthenticatedError } from "../shared/errors.js";
import type { ClientAddresses } from "./client-address.js";
import type { MethodPolicies } from "./method-policies.js";

/**
 * Whether a call may proceed, decided from its method, headers and peer
 * alone: the caller (none for a public method), or why it is refused; the
 * client's address; and the rate limit that applied, if any (for the
 * RateLimit headers). A call refused by its credential's limit still names
 * its verified `principal`.
 */
export type AuthOutcome =
  | { readonly principal: Principal | undefined; readonly client: string; readonly limit?: LimitResult }
  | { readonly refused: unknown; readonly client: string; readonly limit?: LimitResult; readonly principal?: Principal };

/**
 * The outcome a transport decided before reading the request body, for the
 * auth interceptor to apply instead of deciding again. Only server code sets
 * context values; a client cannot.
 */
export const authOutcomeKey = createContextKey<AuthOutcome | undefined>(undefined, { description: "authentication decided before the body" });

/** Options of CallAuthenticator. */
export interface CallAuthenticatorOptions {
  readonly limiter: RateLimiter;
  readonly addresses: ClientAddresses;
  /** Public services whose calls are never limited (gRPC health: probes must always get through). */
  readonly unlimitedServices: ReadonlySet<string>;
}

/**
 * Authenticates and rate-limits calls: the one place that decides, from a
 * method's policy, the request headers (see Authenticator for the credential
 * kinds) and the socket's peer, who calls and whether the caller may call
 * now. The auth interceptor applies it; the transports (fast unary path,
 * connect's universal handler, REST) run it before they read a request body,
 * so an unauthenticated or throttled caller cannot make the server read and
 * buffer bodies — it is answered from its headers. A stream is one call,
 * counted when it opens.
 *
 * Limits: a credential's tier (none for `unlimited`); calls to public
 * methods and calls without a valid credential, per client address. While
 * an address is refused, its calls are refused without verifying their
 * credentials (only credentials this instance already verified get
 * through), so a right guess is no faster than a wrong one.
 */
export class CallAuthenticator {
  readonly #authenticator: Authenticator;
  readonly #policies: MethodPolicies;
  readonly #options: CallAuthenticatorOptions;

  constructor(authenticator: Authenticator, policies: MethodPolicies, options: CallAuthenticatorOptions) {
    this.#authenticator = authenticator;
    this.#policies = policies;
    this.#options = options;
  }

  /** The client's address, from the socket's peer and, behind trusted proxies, X-Forwarded-For. */
  clientAddress(peer: string | undefined, headers: HeaderSource): string {
    return this.#options.addresses.resolve(peer, header(headers, "x-forwarded-for"));
  }

  /**
   * Decides a request to a public endpoint that is no RPC (`/openapi.json`),
   * limited per client address like the public methods; never throws.
   */
  async decidePublic(headers: HeaderSource, peer: string | undefined): Promise<AuthOutcome> {
    const client = this.clientAddress(peer, headers);
    try {
      const limit = await this.#options.limiter.forAddress(client);
      return limit.answer.allowed ? { principal: undefined, client, limit } : { refused: refusal(limit), client, limit };
    } catch (err) {
      return { refused: err, client };
    }
  }

  /**
   * The refusal of a request from an address that ran dry (see `decide`),
   * without taking a token; undefined when it may go on. For routes that
   * must read a body before they can authenticate (webhook deliveries): an
   * address refused for its failures is answered before its body is read.
   */
  blockedAddress(headers: HeaderSource, peer: string | undefined): AuthOutcome | undefined {
    const client = this.clientAddress(peer, headers);
    const blocked = this.#options.limiter.addressBlocked(client);
    if (blocked === undefined) return undefined;
    this.#options.limiter.refusedBlocked(blocked);
    return { refused: refusal(blocked), client, limit: blocked };
  }

  /**
   * Decides a call made for a principal established otherwise — a webhook
   * delivery, verified by its signature, acts as its endpoint's creator:
   * only that credential's rate limit applies; never throws.
   */
  async decideFor(principal: Principal, headers: HeaderSource, peer: string | undefined): Promise<AuthOutcome> {
    const client = this.clientAddress(peer, headers);
    try {
      const limit = await this.#options.limiter.forCredential(principal);
      if (limit !== undefined && !limit.answer.allowed) return { refused: refusal(limit), client, limit, principal };
      return { principal, client, ...(limit && { limit }) };
    } catch (err) {
      return { refused: err, client };
    }
  }

  /**
   * Decides a call of `method` with these request headers from the socket
   * peer `peer` (undefined when unknown); never throws.
   */
  async decide(method: DescMethod, headers: HeaderSource, peer: string | undefined): Promise<AuthOutcome> {
    const { limiter } = this.#options;
    const client = this.clientAddress(peer, headers);
    try {
      if (this.#policies.get(method)?.public === true) {
        if (this.#options.unlimitedServices.has(method.parent.typeName)) return { principal: undefined, client };
        const limit = await limiter.forAddress(client);
        return limit.answer.allowed ? { principal: undefined, client, limit } : { refused: refusal(limit), client, limit };
      }
      const blocked = limiter.addressBlocked(client);
      let principal: Principal;
      if (blocked !== undefined) {
        const known = this.#authenticator.cached(headers);
        if (known === undefined) {
          limiter.refusedBlocked(blocked);
          return { refused: refusal(blocked), client, limit: blocked };
        }
        principal = known;
      } else {
        try {
          principal = await this.#authenticator.authenticate(headers);
        } catch (err) {
          // Only the caller's own failures count against its address: an identity provider that is down is not its fault.
          if (!(err instanceof UnauthenticatedError)) return { refused: err, client };
          const limit = await limiter.forAddress(client);
          return { refused: limit.answer.allowed ? err : refusal(limit), client, limit };
        }
      }
      const limit = await limiter.forCredential(principal);
      if (limit !== undefined && !limit.answer.allowed) return { refused: refusal(limit), client, limit, principal };
      return { principal, client, ...(limit && { limit }) };
    } catch (err) {
      return { refused: err, client };
    }
  }
}

function refusal(limit: LimitResult): RateLimitedError {
  const { policy, subject, answer } = limit;
  return new RateLimitedError({ policy: policy.name, burst: policy.burst, ratePerMinute: policy.ratePerMinute, subject, retryAfterMs: answer.retryAfterMs });
}
