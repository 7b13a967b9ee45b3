import { type RatePolicy, refillPerMs } from "./rate-policy.js";

/** What taking one token from a bucket found. */
export interface BucketAnswer {
  readonly allowed: boolean;
  /** Whole tokens left after this call. */
  readonly remaining: number;
  /** When refused: how long until one token is there; 0 when allowed. */
  readonly retryAfterMs: number;
  /** How long until the bucket is full again. */
  readonly fullInMs: number;
}

/** Where buckets live: this process, or Redis shared by every instance. */
export interface BucketStore {
  /** Takes one token from the bucket `key` of `policy` (a new bucket starts full). */
  take(key: string, policy: RatePolicy): Promise<BucketAnswer>;
  close(): Promise<void>;
}

/** A bucket's state: tokens (fractional) at a time in ms. */
export interface BucketState {
  tokens: number;
  at: number;
}

/**
 * The token bucket rule, shared by the in-memory store and mirrored by the
 * Redis script (redis-buckets.ts): refill for the time passed, capped at the
 * burst; take one token if a whole one is there.
 */
export function takeToken(state: BucketState, policy: RatePolicy, now: number): BucketAnswer {
  const perMs = refillPerMs(policy);
  if (now > state.at) {
    state.tokens = Math.min(policy.burst, state.tokens + (now - state.at) * perMs);
    state.at = now;
  }
  let allowed = false;
  let retryAfterMs = 0;
  if (state.tokens >= 1) {
    state.tokens -= 1;
    allowed = true;
  } else {
    retryAfterMs = Math.ceil((1 - state.tokens) / perMs);
  }
  return { allowed, remaining: Math.floor(state.tokens), retryAfterMs, fullInMs: Math.ceil((policy.burst - state.tokens) / perMs) };
}
