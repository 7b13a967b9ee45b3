import { errors as joseErrors, jwtVerify, type JWTPayload } from "jose";
import { PermissionDeniedError, UnauthenticatedError } from "../shared/errors.js";
import type { KeyStore } from "./key-store.js";
import { rolesCover } from "./roles.js";

/** Who called: established from a verified token. */
export interface Principal {
  readonly subject: string;
  readonly tenant: string;
  readonly roles: readonly string[];
  readonly keyId: string;
}

/** Options of the TokenVerifier. */
export interface TokenVerifierOptions {
  /** Allowed clock skew between the token's issuer and this server, in seconds. */
  readonly clockToleranceSec?: number;
  /** How many verified tokens to remember (0 disables the cache). */
  readonly cacheSize?: number;
}

/**
 * Verifies `Authorization: Bearer <JWT>` headers with jose: HS256 only (so
 * `none` and every other algorithm are refused), a known `kid`, a valid
 * signature, `exp`/`nbf`/`iat` within the clock tolerance, an unexpired key,
 * and a `tenant` claim equal to the key's. Roles beyond the key's grant are
 * PERMISSION_DENIED; every other failure is UNAUTHENTICATED with jose's
 * reason kept only as the cause.
 *
 * Verified tokens are cached until they expire: a client reuses its token
 * for many calls, and re-verifying an HMAC per call is pure overhead.
 */
export class TokenVerifier {
  readonly #keys: KeyStore;
  readonly #clockTolerance: number;
  readonly #cacheSize: number;
  readonly #cache = new Map<string, { principal: Principal; exp: number; keyExpires: number }>();

  constructor(keys: KeyStore, options: TokenVerifierOptions = {}) {
    this.#keys = keys;
    this.#clockTolerance = options.clockToleranceSec ?? 30;
    this.#cacheSize = options.cacheSize ?? 10_000;
  }

  async verify(authorization: string | null): Promise<Principal> {
    const token = bearerToken(authorization);
    const now = Date.now();
    const cached = this.#cache.get(token);
    if (cached !== undefined) {
      if (now < cached.exp && now < cached.keyExpires) return cached.principal;
      this.#cache.delete(token);
    }
    let payload: JWTPayload;
    let keyId: string;
    try {
      const verified = await jwtVerify(
        token,
        (header) => {
          const key = header.kid === undefined ? undefined : this.#keys.get(header.kid);
          if (key === undefined) throw new UnauthenticatedError("unknown signing key");
          if (key.expiresAt !== null && key.expiresAt.getTime() <= Date.now()) {
            throw new UnauthenticatedError("signing key expired");
          }
          return key.secret;
        },
        {
          algorithms: ["HS256"],
          clockTolerance: this.#clockTolerance,
          requiredClaims: ["sub", "exp", "iat"],
        },
      );
      payload = verified.payload;
      keyId = verified.protectedHeader.kid as string;
    } catch (err) {
      throw new UnauthenticatedError(undefined, { cause: err });
    }
    const key = this.#keys.get(keyId)!;
    const iat = payload.iat as number;
    if (iat * 1000 > now + this.#clockTolerance * 1000) {
      throw new UnauthenticatedError(undefined, { cause: new joseErrors.JWTClaimValidationFailed("iat in the future", payload, "iat") });
    }
    if (payload.tenant !== key.tenant) throw new UnauthenticatedError("token tenant does not match its key");
    const roles = payload.roles;
    if (!Array.isArray(roles) || !roles.every((r) => typeof r === "string")) {
      throw new UnauthenticatedError("token roles claim must be a list of strings");
    }
    if (!rolesCover(key.roles, roles)) {
      throw new PermissionDeniedError("token claims roles its key does not grant", { key_id: keyId });
    }
    const principal: Principal = { subject: payload.sub as string, tenant: key.tenant, roles, keyId };
    this.#remember(token, principal, (payload.exp as number) * 1000 + this.#clockTolerance * 1000, key.expiresAt);
    return principal;
  }

  #remember(token: string, principal: Principal, exp: number, keyExpires: Date | null): void {
    if (this.#cacheSize === 0) return;
    if (this.#cache.size >= this.#cacheSize) {
      // Evict the oldest entry; Maps iterate in insertion order.
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(token, { principal, exp, keyExpires: keyExpires?.getTime() ?? Number.POSITIVE_INFINITY });
  }
}

function bearerToken(authorization: string | null): string {
  const match = authorization === null ? null : /^Bearer +([A-Za-z0-9_\-.]+)$/i.exec(authorization.trim());
  if (!match) throw new UnauthenticatedError("missing or malformed Authorization: Bearer header");
  return match[1] as string;
}
