import { Counter, type Registry } from "prom-client";
import { tiers } from "../auth/principal.js";
import type { RateLimitEvents } from "../limits/rate-limiter.js";

/**
 * Rate-limit metrics: refusals by the policy that refused (a tier, or `ip`
 * for callers without a valid credential), and calls limited by this
 * instance alone because Redis did not answer.
 */
export class RateLimitMetrics implements RateLimitEvents {
  readonly #refusals: Counter;
  readonly #localFallbacks: Counter;

  constructor(registry: Registry) {
    this.#refusals = new Counter({
      name: "anvil_rate_limit_refusals_total",
      help: "Calls refused by a rate limit, by tier (`ip`: per client address, for callers without a valid credential).",
      labelNames: ["tier"],
      registers: [registry],
    });
    for (const tier of [...tiers.filter((t) => t !== "unlimited"), "ip"]) this.#refusals.inc({ tier }, 0);
    this.#localFallbacks = new Counter({
      name: "anvil_rate_limit_local_fallbacks_total",
      help: "Calls limited by this instance's own buckets because Redis was unreachable or slow.",
      registers: [registry],
    });
  }

  refused(policy: string): void {
    this.#refusals.inc({ tier: policy });
  }

  /** A call was limited locally instead of in Redis. */
  fellBack(): void {
    this.#localFallbacks.inc();
  }
}
