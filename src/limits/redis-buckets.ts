import { Redis } from "ioredis";
import type { Logger } from "pino";
import { type RatePolicy, refillPerMs } from "./rate-policy.js";
import { MemoryBuckets } from "./memory-buckets.js";
import type { BucketAnswer, BucketStore } from "./token-bucket.js";

/**
 * The token bucket of token-bucket.ts as one atomic script, so every
 * instance sharing the Redis server takes from the same bucket. The clock is
 * Redis's own (TIME), so instances with skewed clocks still agree. State is
 * a hash {tokens, at}; it expires when the bucket would be full again, since
 * a missing bucket is a full one.
 */
const takeTokenScript = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local burst = tonumber(ARGV[1])
local perMs = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * perMs)
  at = now
end
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) / perMs)
end
local full = math.ceil((burst - tokens) / perMs)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.max(full, 1000))
return {allowed, math.floor(tokens), retry, full}
`;

type TakeTokenCommand = (key: string, burst: string, perMs: string) => Promise<[number, number, number, number]>;

/** Options of RedisBuckets. */
export interface RedisBucketsOptions {
  readonly url: string;
  /** Prefix of every key (ANVIL_REDIS_PREFIX), so several gateways or test runs can share one server. */
  readonly keyPrefix: string;
  /** How long one command may take before the call falls back to this instance's buckets. */
  readonly commandTimeoutMs: number;
  /** How long after a failure Redis is left alone (unless it reconnects first). */
  readonly retryAfterMs?: number;
}

/**
 * Buckets in Redis, shared by every instance, with this instance's own
 * buckets as the fallback: when Redis is unreachable or slow, calls are
 * limited per instance, one warning is logged, and the shared buckets are
 * used again as soon as Redis answers. No call waits for a reconnect and
 * none fails because of Redis: commands are not queued while disconnected
 * (they fail at once) and each has a short timeout.
 */
export class RedisBuckets implements BucketStore {
  readonly #redis: Redis;
  readonly #take: TakeTokenCommand;
  readonly #fallback = new MemoryBuckets();
  readonly #log: Logger;
  readonly #prefix: string;
  readonly #retryAfterMs: number;
  /** Whether the last attempt failed (the warning was logged). */
  #down = false;
  /** Until when Redis is skipped after a failure. */
  #skipUntil = 0;
  readonly #onFallback: (() => void) | undefined;

  constructor(options: RedisBucketsOptions, log: Logger, onFallback?: () => void) {
    this.#log = log;
    this.#prefix = options.keyPrefix;
    this.#retryAfterMs = options.retryAfterMs ?? 1_000;
    this.#onFallback = onFallback;
    this.#redis = new Redis(options.url, {
      enableOfflineQueue: false,
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: Math.max(options.commandTimeoutMs, 1_000),
      maxRetriesPerRequest: 0,
      // Keep reconnecting for as long as the gateway runs.
      retryStrategy: (times) => Math.min(times * 100, 1_000),
    });
    this.#redis.defineCommand("anvilTakeToken", { numberOfKeys: 1, lua: takeTokenScript });
    this.#take = (this.#redis as unknown as { anvilTakeToken: TakeTokenCommand }).anvilTakeToken.bind(this.#redis);
    // Failures are reported by the calls that meet them; connection errors alone are not news.
    this.#redis.on("error", () => {});
    this.#redis.on("ready", () => {
      this.#skipUntil = 0;
    });
  }

  /**
   * Waits up to `timeoutMs` for the first connection, so a gateway starting
   * next to a healthy Redis shares its limits from the first call; a Redis
   * that is down is reported (once) and does not delay the start further.
   */
  async ready(timeoutMs: number): Promise<void> {
    if (this.#redis.status === "ready") return;
    let timer: NodeJS.Timeout | undefined;
    let onReady: (() => void) | undefined;
    await new Promise<void>((resolve) => {
      onReady = resolve;
      this.#redis.once("ready", resolve);
      timer = setTimeout(resolve, timeoutMs);
    });
    clearTimeout(timer);
    if (onReady) this.#redis.off("ready", onReady);
    if ((this.#redis.status as string) !== "ready" && !this.#down) {
      this.#down = true;
      this.#log.warn("Redis unreachable: rate limits are enforced per instance until it answers again");
    }
  }

  async take(key: string, policy: RatePolicy): Promise<BucketAnswer> {
    if (Date.now() < this.#skipUntil || this.#redis.status !== "ready") return this.#local(key, policy);
    try {
      const [allowed, remaining, retryAfterMs, fullInMs] = await this.#take(this.#prefix + key, String(policy.burst), String(refillPerMs(policy)));
      if (this.#down) {
        this.#down = false;
        this.#log.info("Redis answers again: rate limits are shared across instances again");
      }
      return { allowed: allowed === 1, remaining, retryAfterMs, fullInMs };
    } catch (err) {
      this.#skipUntil = Date.now() + this.#retryAfterMs;
      if (!this.#down) {
        this.#down = true;
        this.#log.warn({ err }, "Redis unreachable: rate limits are enforced per instance until it answers again");
      }
      return this.#local(key, policy);
    }
  }

  #local(key: string, policy: RatePolicy): BucketAnswer {
    if (!this.#down) {
      // The connection dropped between calls: the same single warning.
      this.#down = true;
      this.#log.warn("Redis unreachable: rate limits are enforced per instance until it answers again");
    }
    this.#onFallback?.();
    return this.#fallback.takeNow(key, policy);
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
    await this.#fallback.close();
  }
}
