import type { Tier } from "../auth/principal.js";

/** An API key of a tenant, as the domain sees it. Never holds its secret or hash, except `secret` right after creation. */
export interface ApiKey {
  readonly id: string;
  readonly displayName: string;
  readonly roles: readonly string[];
  readonly tier: Tier;
  readonly state: ApiKeyState;
  /** `kind:id` of the credential that created the key. */
  readonly creator: string;
  readonly expireTime: Date | null;
  readonly lastUsedTime: Date | null;
  readonly version: number;
  readonly createTime: Date;
  readonly updateTime: Date;
  /** The secret, only in the answer of the create that made the key; never stored, never replayed. */
  readonly secret?: string;
}

/** `expired` is derived: an active key whose expire time has passed. */
export type ApiKeyState = "active" | "revoked" | "expired";

/** What a caller decides when creating a key. */
export interface NewApiKey {
  readonly displayName: string;
  readonly roles: readonly string[];
  /** Undefined: the default tier. */
  readonly tier: Tier | undefined;
  readonly expireTime: Date | null;
}

/** The one change a key can undergo besides deletion. */
export interface ApiKeyPatch {
  readonly state: "revoked";
}

/** The tier of keys created without one, in a tenant without a default tier of its own (ANVIL_TENANT_TIERS). */
export const defaultApiKeyTier: Tier = "free";

/** The state a stored key is in at `now`. */
export function stateAt(stored: "active" | "revoked", expireTime: Date | null, now: number): ApiKeyState {
  if (stored === "revoked") return "revoked";
  return expireTime !== null && expireTime.getTime() <= now ? "expired" : "active";
}
