/** The kinds of credential a caller can present. */
export type CredentialKind = "service_account" | "api_key" | "oidc";

/**
 * Which credential called: its kind and a stable id — the service-account key
 * id, the API key id, or the OIDC issuer and subject. Limits, logs and audit
 * name the caller by it, never by a claim its holder can vary at will.
 */
export interface Credential {
  readonly kind: CredentialKind;
  readonly id: string;
}

/** Rate-limit tiers a credential can carry. */
export const tiers = ["free", "pro", "enterprise", "unlimited"] as const;
export type Tier = (typeof tiers)[number];

export function isTier(name: string): name is Tier {
  return (tiers as readonly string[]).includes(name);
}

/** Who called: established from a verified credential. */
export interface Principal {
  /** The caller as it is named: a token's `sub`, or `apikeys/<id>` for an API key (not its display name, which says nothing about who holds it). */
  readonly subject: string;
  readonly tenant: string;
  readonly roles: readonly string[];
  readonly credential: Credential;
  readonly tier: Tier;
}

/** `kind:id`, the one string that names a credential (stream caps, creator of an API key). */
export function credentialName(c: { readonly kind: string; readonly id: string }): string {
  return `${c.kind}:${c.id}`;
}
