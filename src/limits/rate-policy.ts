import { type Tier, tiers } from "../auth/principal.js";

/**
 * One token bucket's shape: it holds at most `burst` calls and refills at
 * `ratePerMinute`, so a full bucket allows the burst at once and then the
 * rate. `name` names the policy in the RateLimit headers (the tier, or `ip`).
 */
export interface RatePolicy {
  readonly name: string;
  readonly burst: number;
  readonly ratePerMinute: number;
}

/** The limits of every tier but `unlimited`, which has none. */
export type TierPolicies = Readonly<Record<Exclude<Tier, "unlimited">, RatePolicy>>;

/** The seed's numbers: free 10/min burst 20, pro 100/min burst 200, enterprise 1000/min burst 2000. */
export const defaultTierPolicies: TierPolicies = {
  free: { name: "free", burst: 20, ratePerMinute: 10 },
  pro: { name: "pro", burst: 200, ratePerMinute: 100 },
  enterprise: { name: "enterprise", burst: 2000, ratePerMinute: 1000 },
};

/** Calls without a valid credential, per client address: enough for a person mistyping a key, too few for guessing. */
export const defaultAddressPolicy: RatePolicy = { name: "ip", burst: 20, ratePerMinute: 10 };

/** Tokens a bucket of `policy` gains per millisecond. */
export function refillPerMs(policy: RatePolicy): number {
  return policy.ratePerMinute / 60_000;
}

/** The policy of `tier`, or undefined for `unlimited`. */
export function policyOf(policies: TierPolicies, tier: Tier): RatePolicy | undefined {
  return tier === "unlimited" ? undefined : policies[tier];
}

/**
 * Tier limits from ANVIL_RATE_LIMIT_TIERS, a JSON object that overrides
 * some tiers' numbers: `{"free":{"burst":5,"ratePerMinute":60}}`. Tiers it
 * does not name keep their defaults; `unlimited` cannot be limited.
 */
export function parseTierPolicies(raw: string | undefined): TierPolicies {
  if (raw === undefined || raw.trim() === "") return defaultTierPolicies;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error("ANVIL_RATE_LIMIT_TIERS must be a JSON object like {\"free\":{\"burst\":20,\"ratePerMinute\":10}}");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("ANVIL_RATE_LIMIT_TIERS must be a JSON object");
  const out: Record<string, RatePolicy> = { ...defaultTierPolicies };
  for (const [tier, value] of Object.entries(parsed)) {
    if (!(tier in defaultTierPolicies)) {
      throw new Error(`ANVIL_RATE_LIMIT_TIERS: ${JSON.stringify(tier)} is not a limited tier (${tiers.filter((t) => t !== "unlimited").join(", ")})`);
    }
    out[tier] = ratePolicy(tier, value, `ANVIL_RATE_LIMIT_TIERS.${tier}`);
  }
  return out as TierPolicies;
}

/** A policy from `{"burst":…,"ratePerMinute":…}`, refusing numbers that make no bucket. */
export function ratePolicy(name: string, value: unknown, where: string): RatePolicy {
  const v = value as { burst?: unknown; ratePerMinute?: unknown } | null;
  const burst = v?.burst;
  const rate = v?.ratePerMinute;
  if (typeof burst !== "number" || !Number.isInteger(burst) || burst < 1 || burst > 1e9) {
    throw new Error(`${where}.burst must be an integer from 1 to 1000000000`);
  }
  if (typeof rate !== "number" || !Number.isFinite(rate) || rate <= 0 || rate > 1e9) {
    throw new Error(`${where}.ratePerMinute must be a number above 0 and at most 1000000000`);
  }
  return { name, burst, ratePerMinute: rate };
}
