import { jwtVerify, type JWTPayload } from "jose";
import { PermissionDeniedError, UnauthenticatedError } from "../shared/errors.js";
import type { ServiceAccountKey } from "./key-store.js";
import type { Principal } from "./principal.js";
import { rolesCover } from "./roles.js";

/** Where the verifier finds service-account keys: the keys file as last loaded. */
export interface KeyLookup {
  get(keyId: string): ServiceAccountKey | undefined;
}

/** Options of the TokenVerifier. */
export interface TokenVerifierOptions {
  /** Allowed clock skew between the token's issuer and this server, in seconds. */
  readonly clockToleranceSec?: number;
  /** How many verified tokens to remember (0 disables the cache). */
  readonly cacheSize?: number;
  /** Longest lifetime (`exp − iat`) a token may have, in seconds (default 24 h). */
  readonly maxLifetimeSec?: number;
}

interface Verified {
  readonly principal: Principal;
  readonly exp: number;
  readonly key: ServiceAccountKey;
}

/**
 * Verifies service-account tokens (JWTs signed with a key of the keys file)
 * with jose: HS256 only (so `none` and every other algorithm are refused), a
 * known `kid`, a valid signature, `exp`/`nbf`/`iat` within the clock
 * tolerance, a lifetime within the maximum, an unexpired key, and a `tenant`
 * claim equal to the key's. Roles beyond the key's grant are
 * PERMISSION_DENIED; every other failure is UNAUTHENTICATED with the reason
 * kept only as the cause.
 *
 * Verified tokens are cached until they expire: a client reuses its token
 * for many calls, and re-verifying an HMAC per call is pure overhead. A hit
 * still checks that its key is the one the keys file holds now, so a key
 * removed or replaced by a reload stops its tokens at once.
 */
export class TokenVerifier {
  readonly #keys: KeyLookup;
  readonly #clockTolerance: number;
  readonly #cacheSize: number;
  readonly #maxLifetime: number;
  readonly #cache = new Map<string, Verified>();

  constructor(keys: KeyLookup, options: TokenVerifierOptions = {}) {
    this.#keys = keys;
    this.#clockTolerance = options.clockToleranceSec ?? 30;
    this.#cacheSize = options.cacheSize ?? 10_000;
    this.#maxLifetime = options.maxLifetimeSec ?? 86_400;
  }

  /** The principal of a token verified before and still valid, without verifying again. */
  cached(token: string): Principal | undefined {
    const hit = this.#cache.get(token);
    if (hit === undefined) return undefined;
    const now = Date.now();
    if (now < hit.exp && this.#keys.get(hit.key.keyId) === hit.key && !expired(hit.key, now)) return hit.principal;
    this.#cache.delete(token);
    return undefined;
  }

  async verify(token: string): Promise<Principal> {
    const hit = this.cached(token);
    if (hit !== undefined) return hit;
    let payload: JWTPayload;
    let key: ServiceAccountKey | undefined;
    try {
      const verified = await jwtVerify(
        token,
        (header) => {
          key = header.kid === undefined ? undefined : this.#keys.get(header.kid);
          if (key === undefined) throw new UnauthenticatedError("unknown signing key");
          if (expired(key, Date.now())) throw new UnauthenticatedError("signing key expired", { expired: true });
          return key.secret;
        },
        {
          algorithms: ["HS256"],
          clockTolerance: this.#clockTolerance,
          requiredClaims: ["sub", "exp", "iat"],
        },
      );
      payload = verified.payload;
    } catch (err) {
      if (err instanceof UnauthenticatedError) throw err;
      throw new UnauthenticatedError(
        // Stryker disable next-line StringLiteral: given a cause, UnauthenticatedError keeps the cause, not this text (it says what the line does)
        "token refused",
        { cause: err, expired: (err as { code?: string }).code === "ERR_JWT_EXPIRED" },
      );
    }
    const signer = key!;
    const now = Date.now();
    const iat = payload.iat as number;
    const exp = payload.exp as number;
    if (iat * 1000 > now + this.#clockTolerance * 1000) throw new UnauthenticatedError("iat in the future");
    if (exp - iat > this.#maxLifetime) throw new UnauthenticatedError(`token lifetime exceeds ${this.#maxLifetime} s`);
    if (payload.tenant !== signer.tenant) throw new UnauthenticatedError("token tenant does not match its key");
    const roles = payload.roles;
    if (!Array.isArray(roles) || !roles.every((r) => typeof r === "string")) {
      throw new UnauthenticatedError("token roles claim must be a list of strings");
    }
    if (!rolesCover(signer.roles, roles)) {
      throw new PermissionDeniedError("token claims roles its key does not grant", { key_id: signer.keyId });
    }
    const principal: Principal = {
      subject: payload.sub as string,
      tenant: signer.tenant,
      roles,
      credential: { kind: "service_account", id: signer.keyId },
      tier: signer.tier,
    };
    this.#remember(token, { principal, exp: exp * 1000 + this.#clockTolerance * 1000, key: signer });
    return principal;
  }

  /** The signing key `keyId` as the keys file holds it now; UNAUTHENTICATED when it was removed or has expired. */
  key(keyId: string): ServiceAccountKey {
    const key = this.#keys.get(keyId);
    if (key === undefined) throw new UnauthenticatedError("service-account key no longer in the keys file");
    if (expired(key, Date.now())) throw new UnauthenticatedError("service-account key expired", { expired: true });
    return key;
  }

  /** Drops every cached token of `keyId` (the key was removed, replaced or expired). */
  forgetKey(keyId: string): void {
    for (const [token, entry] of this.#cache) if (entry.key.keyId === keyId) this.#cache.delete(token);
  }

  #remember(token: string, entry: Verified): void {
    if (this.#cacheSize === 0) return;
    if (this.#cache.size >= this.#cacheSize) {
      // Evict the oldest entry; Maps iterate in insertion order.
      const oldest = this.#cache.keys().next().value;
      // Stryker disable next-line ConditionalExpression: a full cache holds at least one token (a size of 0 caches nothing), so there is always an oldest
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(token, entry);
  }
}

function expired(key: ServiceAccountKey, now: number): boolean {
  return key.expiresAt !== null && key.expiresAt.getTime() <= now;
}
