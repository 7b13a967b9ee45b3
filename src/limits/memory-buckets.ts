import type { RatePolicy } from "./rate-policy.js";
import { type BucketAnswer, type BucketState, type BucketStore, takeToken } from "./token-bucket.js";

/**
 * Buckets in this process: the store without Redis, and the fallback while
 * Redis is unreachable. A bucket that has refilled completely is the same as
 * no bucket, so those are swept once a minute; the map is also capped, so a
 * flood of distinct addresses cannot grow it without bound (the oldest
 * entries go first, and a dropped bucket starts full again).
 */
export class MemoryBuckets implements BucketStore {
  readonly #buckets = new Map<string, BucketState & { fullAt: number }>();
  readonly #maxBuckets: number;
  readonly #sweeper: NodeJS.Timeout;

  constructor(maxBuckets = 100_000) {
    this.#maxBuckets = maxBuckets;
    this.#sweeper = setInterval(() => this.#sweep(), 60_000);
    this.#sweeper.unref();
  }

  take(key: string, policy: RatePolicy): Promise<BucketAnswer> {
    return Promise.resolve(this.takeNow(key, policy));
  }

  /** take() without a promise, for the fallback path. */
  takeNow(key: string, policy: RatePolicy): BucketAnswer {
    const now = performance.timeOrigin + performance.now();
    let state = this.#buckets.get(key);
    if (state === undefined) {
      if (this.#buckets.size >= this.#maxBuckets) this.#buckets.delete(this.#buckets.keys().next().value as string);
      state = { tokens: policy.burst, at: now, fullAt: now };
      this.#buckets.set(key, state);
    }
    const answer = takeToken(state, policy, now);
    state.fullAt = now + answer.fullInMs;
    return answer;
  }

  #sweep(): void {
    const now = performance.timeOrigin + performance.now();
    for (const [key, state] of this.#buckets) if (state.fullAt <= now) this.#buckets.delete(key);
  }

  close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#buckets.clear();
    return Promise.resolve();
  }
}
