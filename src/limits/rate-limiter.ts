import { credentialName, type Principal } from "../auth/principal.js";
import { type RatePolicy, policyOf, refillPerMs, type TierPolicies } from "./rate-policy.js";
import type { BucketAnswer, BucketStore } from "./token-bucket.js";

/** The limit that applied to a call and what its bucket said: what the RateLimit headers and a refusal describe. */
export interface LimitResult {
  readonly policy: RatePolicy;
  /** Whose bucket: `api_key:<id>` (a credential) or `ip:<address>`. */
  readonly subject: string;
  readonly answer: BucketAnswer;
}

/** What the limiter tells the metrics. */
export interface RateLimitEvents {
  /** A call was refused by the policy `policy` (a tier, or `ip`). */
  refused(policy: string): void;
}

/** Options of RateLimiter. */
export interface RateLimiterOptions {
  readonly tiers: TierPolicies;
  /** The limit of calls without a valid credential, per client address. */
  readonly address: RatePolicy;
  readonly events?: RateLimitEvents;
}

/**
 * Rate limits per credential (by its tier) and per client address (calls
 * without a valid credential, and public endpoints), each a token bucket in
 * the store (memory or Redis). It also remembers, on this instance, which
 * addresses ran dry and until when, so that while an address is refused its
 * credentials are not even verified (see CallAuthenticator): guessing keys
 * from one address is as slow as the address's limit, right guesses included.
 */
export class RateLimiter {
  readonly #store: BucketStore;
  readonly #options: RateLimiterOptions;
  readonly #blocked = new Map<string, { until: number; fullAt: number; policy: RatePolicy; subject: string }>();

  constructor(store: BucketStore, options: RateLimiterOptions) {
    this.#store = store;
    this.#options = options;
  }

  /** Takes a call from the caller's bucket; undefined for the `unlimited` tier. */
  async forCredential(principal: Principal): Promise<LimitResult | undefined> {
    const policy = policyOf(this.#options.tiers, principal.tier);
    if (policy === undefined) return undefined;
    const subject = credentialName(principal.credential);
    return this.#take(`c:${subject}`, subject, policy);
  }

  /** Takes a call from the bucket of a client address. */
  async forAddress(address: string): Promise<LimitResult> {
    const subject = `ip:${address}`;
    const policy = this.#options.address;
    const result = await this.#take(subject, subject, policy);
    const { answer } = result;
    if (answer.remaining === 0) {
      // Dry (refused, or this call took the last token): until the next token, its credentials are not verified.
      const nextTokenMs = answer.allowed ? answer.fullInMs - (policy.burst - 1) / refillPerMs(policy) : answer.retryAfterMs;
      if (this.#blocked.size >= 10_000) this.#blocked.delete(this.#blocked.keys().next().value as string);
      const now = Date.now();
      this.#blocked.set(address, { until: now + nextTokenMs, fullAt: now + answer.fullInMs, policy, subject });
    }
    return result;
  }

  /**
   * If `address` ran dry and its bucket has no token yet (as far as this
   * instance knows), the refusal to answer with; otherwise undefined.
   * Counts nothing: the caller may still let the call through (a credential
   * this instance verified before), and counts a refusal with refusedBlocked.
   */
  addressBlocked(address: string): LimitResult | undefined {
    const hit = this.#blocked.get(address);
    if (hit === undefined) return undefined;
    const now = Date.now();
    const left = Math.ceil(hit.until - now);
    if (left <= 0) {
      this.#blocked.delete(address);
      return undefined;
    }
    return { policy: hit.policy, subject: hit.subject, answer: { allowed: false, remaining: 0, retryAfterMs: left, fullInMs: Math.ceil(hit.fullAt - now) } };
  }

  /** Counts a call refused with what addressBlocked answered. */
  refusedBlocked(blocked: LimitResult): void {
    this.#options.events?.refused(blocked.policy.name);
  }

  async #take(key: string, subject: string, policy: RatePolicy): Promise<LimitResult> {
    const answer = await this.#store.take(key, policy);
    if (!answer.allowed) this.#options.events?.refused(policy.name);
    return { policy, subject, answer };
  }

  close(): Promise<void> {
    return this.#store.close();
  }
}
