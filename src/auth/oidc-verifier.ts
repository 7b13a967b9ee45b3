import { createRemoteJWKSet, decodeJwt, errors as joseErrors, type JWTPayload, jwtVerify } from "jose";
import { UnauthenticatedError, UnavailableError } from "../shared/errors.js";
import type { OidcTokenVerifier } from "./authenticator.js";
import { isTier, type Principal, type Tier } from "./principal.js";
import { isRole } from "./roles.js";

/** How Anvil trusts an OpenID provider. */
export interface OidcOptions {
  /** The provider's issuer identifier, exactly as its tokens' `iss` (ANVIL_OIDC_ISSUER). */
  readonly issuer: string;
  /** The audience Anvil's tokens carry (ANVIL_OIDC_AUDIENCE). */
  readonly audience: string;
  /**
   * The console's client id at the provider (ANVIL_OIDC_CONSOLE_CLIENT_ID): tokens issued to the console
   * (its ID token's audience is its client id) are accepted as well as those for `audience`.
   */
  readonly consoleClientId?: string;
  /** The scopes the console requests when it signs in (ANVIL_OIDC_CONSOLE_SCOPES, default `openid profile`). */
  readonly consoleScopes?: readonly string[];
  /** Claim naming the caller's tenant; a dotted path reaches into objects (ANVIL_OIDC_TENANT_CLAIM, default `tenant`). */
  readonly tenantClaim: string;
  /** Claim listing the caller's roles, an array or a space-separated string (ANVIL_OIDC_ROLES_CLAIM, default `roles`). */
  readonly rolesClaim: string;
  /** Every caller's tenant, instead of a claim (ANVIL_OIDC_TENANT). */
  readonly fixedTenant: string | undefined;
  /** Least time between two fetches of the key set on unknown `kid`s (ANVIL_OIDC_JWKS_COOLDOWN_MS, default 30 s). */
  readonly jwksCooldownMs: number;
  /** Rate-limit tier of OIDC callers whose token has no tier claim and whose tenant has no default tier (ANVIL_OIDC_TIER). */
  readonly tier: Tier;
  /** Claim naming the caller's tier (ANVIL_OIDC_TIER_CLAIM, default `tier`); a value that is no tier is ignored. */
  readonly tierClaim?: string;
  /** Default tier by tenant (ANVIL_TENANT_TIERS), for tokens without a tier claim. */
  readonly tenantTiers?: ReadonlyMap<string, Tier>;
  /** Allowed clock skew, in seconds. */
  readonly clockToleranceSec?: number;
}

/** Asymmetric algorithms only: a shared-secret (HS*) token can never pass as the provider's. */
const algorithms = ["RS256", "PS256", "ES256", "EdDSA"];

// jose errors that mean the token (not the provider) is at fault.
const tokenFaults = new Set([
  joseErrors.JWTExpired.code,
  joseErrors.JWTClaimValidationFailed.code,
  joseErrors.JWTInvalid.code,
  joseErrors.JWSInvalid.code,
  joseErrors.JWSSignatureVerificationFailed.code,
  joseErrors.JOSEAlgNotAllowed.code,
  joseErrors.JOSENotSupported.code,
  joseErrors.JWKSNoMatchingKey.code,
  joseErrors.JWKSMultipleMatchingKeys.code,
]);

/**
 * Verifies JWTs of one OpenID provider: discovery from
 * `<issuer>/.well-known/openid-configuration` (on first use, retried until
 * it answers), signing keys from its `jwks_uri` through jose's remote key
 * set — cached, re-fetched on an unknown `kid` at most once per cooldown, so
 * a key rotation needs no restart and a flood of made-up kids cannot hammer
 * the provider — `iss`, `aud`, `exp`, `nbf` checked with a small leeway.
 * Roles outside Anvil's set are dropped, never mapped. A provider that
 * cannot be reached is UNAVAILABLE, not the caller's fault.
 */
export class OidcVerifier implements OidcTokenVerifier {
  readonly #options: OidcOptions;
  readonly #cache = new Map<string, { principal: Principal; exp: number }>();
  #keys: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;

  constructor(options: OidcOptions) {
    this.#options = options;
  }

  get issuer(): string {
    return this.#options.issuer;
  }

  claims(token: string): boolean {
    try {
      return decodeJwt(token).iss === this.#options.issuer;
    } catch {
      return false;
    }
  }

  cached(token: string): Principal | undefined {
    const hit = this.#cache.get(token);
    if (hit === undefined) return undefined;
    if (Date.now() < hit.exp) return hit.principal;
    this.#cache.delete(token);
    return undefined;
  }

  async verify(token: string): Promise<Principal> {
    const hit = this.cached(token);
    if (hit !== undefined) return hit;
    const o = this.#options;
    const keys = await this.#keySet();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: o.issuer,
        // Stryker disable next-line ConditionalExpression: [audience, undefined] accepts what audience alone does (jose requires an aud, and none is undefined)
        audience: o.consoleClientId === undefined ? o.audience : [o.audience, o.consoleClientId],
        algorithms,
        clockTolerance: o.clockToleranceSec ?? 30,
        requiredClaims: ["sub", "exp"],
      }));
    } catch (err) {
      const code = (err as { code?: string }).code;
      // Stryker disable next-line ConditionalExpression: the set holds no undefined, so has(undefined) is false already
      if (code !== undefined && tokenFaults.has(code)) {
        // Stryker disable next-line StringLiteral: given a cause, UnauthenticatedError keeps the cause, not this text
        throw new UnauthenticatedError("OIDC token refused", { cause: err, expired: code === joseErrors.JWTExpired.code });
      }
      throw new UnavailableError("identity provider unreachable, retry later", { cause: err });
    }
    const tenant = o.fixedTenant ?? claimAt(payload, o.tenantClaim);
    if (typeof tenant !== "string" || tenant === "") throw new UnauthenticatedError(`OIDC token has no ${o.tenantClaim} claim`);
    const principal: Principal = {
      subject: payload.sub as string,
      tenant,
      roles: rolesOf(claimAt(payload, o.rolesClaim)),
      credential: { kind: "oidc", id: `${o.issuer}#${payload.sub as string}` },
      tier: tierOf(o.tierClaim === undefined ? undefined : claimAt(payload, o.tierClaim)) ?? o.tenantTiers?.get(tenant) ?? o.tier,
    };
    if (this.#cache.size >= 10_000) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(token, { principal, exp: (payload.exp as number) * 1000 });
    return principal;
  }

  #keySet(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    this.#keys ??= this.#discover().catch((err: unknown) => {
      // Retried by the next call: a provider down at start-up must not disable OIDC for good.
      this.#keys = undefined;
      throw new UnavailableError("identity provider unreachable, retry later", { cause: err });
    });
    return this.#keys;
  }

  async #discover(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    const o = this.#options;
    const url = `${o.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    const metadata = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
    if (metadata.issuer !== o.issuer) throw new Error(`${url} names issuer ${String(metadata.issuer)}, not ${o.issuer}`);
    if (typeof metadata.jwks_uri !== "string") throw new Error(`${url} has no jwks_uri`);
    return createRemoteJWKSet(new URL(metadata.jwks_uri), { cooldownDuration: o.jwksCooldownMs, timeoutDuration: 5_000 });
  }
}

/** The claim at a dotted path (`realm_access.roles`), or undefined. */
function claimAt(payload: JWTPayload, path: string): unknown {
  let value: unknown = payload;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** Anvil's roles among the claim's values; everything else is ignored. */
function rolesOf(claim: unknown): string[] {
  // Stryker disable next-line ArrayDeclaration: whatever the empty list held would be filtered out as no role
  const values = typeof claim === "string" ? claim.split(" ") : Array.isArray(claim) ? claim : [];
  return values.filter((r): r is string => typeof r === "string" && isRole(r));
}

/** The tier a claim names, or undefined when it names none. */
function tierOf(claim: unknown): Tier | undefined {
  // Stryker disable next-line ConditionalExpression: isTier compares by identity (Array.includes), so only a string can be a tier; the typeof narrows the type
  return typeof claim === "string" && isTier(claim) ? claim : undefined;
}
