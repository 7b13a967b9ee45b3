import { UnauthenticatedError } from "../shared/errors.js";
import type { Principal } from "./principal.js";
import { rolesCover } from "./roles.js";
import type { TokenVerifier } from "./token-verifier.js";

/**
 * Request headers as any transport holds them: fetch `Headers` (Connect's
 * interceptors, the fast unary path) or Node's `IncomingHttpHeaders`
 * (lower-case names), so every transport authenticates through the same
 * function before it reads a body.
 */
export type HeaderSource = { get(name: string): string | null } | Readonly<Record<string, string | string[] | undefined>>;

/** Verifies one kind of bearer credential. */
export interface CredentialVerifier {
  /** The principal of a credential verified before and still valid, or undefined (cheap: no I/O, no crypto beyond a hash). */
  cached(credential: string): Principal | undefined;
  verify(credential: string): Promise<Principal>;
  /**
   * The principal of credential `id` as it stands now, looked up by id
   * without its secret (for a grant stored earlier); UNAUTHENTICATED when it
   * is gone, revoked or expired. Absent: such credentials cannot be rechecked.
   */
  current?(id: string): Promise<Principal>;
}

/** A verifier of JWTs from an OpenID provider, which says which tokens are its to verify. */
export interface OidcTokenVerifier extends CredentialVerifier {
  /** Whether the token claims this verifier's issuer (decoded, not verified). */
  claims(token: string): boolean;
  /** The issuer whose tokens this verifier trusts (OIDC credential ids are `<issuer>#<sub>`). */
  readonly issuer: string;
}

/** The verifiers an Authenticator dispatches to. */
export interface AuthenticatorOptions {
  readonly serviceAccounts: TokenVerifier;
  /** API keys (`anvil_<id>_<secret>`); absent: such keys are refused. */
  readonly apiKeys?: CredentialVerifier;
  /** Tokens of the configured OpenID provider; absent: OIDC is off. */
  readonly oidc?: OidcTokenVerifier;
}

/** The recognisable prefix of every Anvil API key. */
export const apiKeyPrefix = "anvil_";

/**
 * Who calls, from the request headers alone: the one place every transport
 * and the auth interceptor ask. Accepts
 *   - `x-api-key: anvil_…` or `Authorization: Bearer anvil_…` — an API key;
 *   - `Authorization: Bearer <JWT>` from the configured OpenID provider (its
 *     `iss`), verified against the provider's published keys;
 *   - `Authorization: Bearer <JWT>` signed with a service-account key.
 * Every refusal is the same generic UNAUTHENTICATED (see UnauthenticatedError).
 *
 * @example
 *   const principal = await authenticator.authenticate(req.header);
 */
export class Authenticator {
  readonly #options: AuthenticatorOptions;

  constructor(options: AuthenticatorOptions) {
    this.#options = options;
  }

  async authenticate(headers: HeaderSource): Promise<Principal> {
    const { serviceAccounts, apiKeys, oidc } = this.#options;
    const apiKey = header(headers, "x-api-key");
    const authorization = header(headers, "authorization");
    if (apiKey !== undefined) {
      // Two credentials could name two callers: refuse rather than pick one.
      if (authorization !== undefined) throw new UnauthenticatedError("both x-api-key and Authorization sent");
      return this.#apiKey(apiKey.trim());
    }
    const token = bearerToken(authorization);
    if (token.startsWith(apiKeyPrefix)) return this.#apiKey(token);
    const hit = serviceAccounts.cached(token) ?? oidc?.cached(token);
    if (hit !== undefined) return hit;
    if (oidc?.claims(token) === true) return oidc.verify(token);
    return serviceAccounts.verify(token);
  }

  /**
   * The caller if its credential was verified before on this instance and
   * is still valid, without any I/O or signature check; otherwise undefined
   * (also for malformed headers).
   */
  cached(headers: HeaderSource): Principal | undefined {
    const { serviceAccounts, apiKeys, oidc } = this.#options;
    const apiKey = header(headers, "x-api-key");
    const authorization = header(headers, "authorization");
    if (apiKey !== undefined) return authorization === undefined ? apiKeys?.cached(apiKey.trim()) : undefined;
    const match = authorization === undefined ? null : /^Bearer +([A-Za-z0-9_\-.]+)$/i.exec(authorization.trim());
    if (!match) return undefined;
    const token = match[1] as string;
    if (token.startsWith(apiKeyPrefix)) return apiKeys?.cached(token);
    return serviceAccounts.cached(token) ?? oidc?.cached(token);
  }

  /**
   * A principal verified earlier and stored — a webhook endpoint's creator,
   * kept with the roles it had — as its credential stands now, so that what
   * acts for it later can do no more than it could do now. Never more roles
   * than `earlier` had; UNAUTHENTICATED (the reason kept as the cause) when
   * the credential may no longer act:
   *   - an API key is read as authentication reads it (cached, dropped at
   *     once on revocation): revoked, expired or deleted keys are refused,
   *     and its roles and tier are the key's;
   *   - a service-account key must still be in the keys file as last loaded,
   *     unexpired and in the same tenant; the roles kept are those the key
   *     still grants, the tier the key's;
   *   - an OIDC user cannot be asked about without a token of theirs: the
   *     roles its token had are kept for as long as the gateway trusts that
   *     token's issuer (ANVIL_OIDC_ISSUER unchanged). Taking a user's access
   *     away at the provider does not reach what it created here.
   */
  async current(earlier: Principal): Promise<Principal> {
    const { serviceAccounts, apiKeys, oidc } = this.#options;
    const { credential } = earlier;
    let now: Principal;
    switch (credential.kind) {
      case "api_key":
        if (apiKeys?.current === undefined) throw new UnauthenticatedError("API keys are not enabled");
        now = await apiKeys.current(credential.id);
        break;
      case "service_account": {
        const key = serviceAccounts.key(credential.id);
        now = { ...earlier, tenant: key.tenant, roles: earlier.roles.filter((r) => rolesCover(key.roles, [r])), tier: key.tier };
        break;
      }
      case "oidc":
        if (oidc === undefined || !credential.id.startsWith(`${oidc.issuer}#`)) throw new UnauthenticatedError("the OIDC issuer is no longer trusted");
        now = earlier;
        break;
      default:
        throw new UnauthenticatedError(`unknown credential kind ${String(credential.kind)}`);
    }
    if (now.tenant !== earlier.tenant) throw new UnauthenticatedError("the credential now belongs to another tenant");
    return { ...earlier, roles: earlier.roles.filter((r) => now.roles.includes(r)), tier: now.tier };
  }

  #apiKey(secret: string): Promise<Principal> {
    const verifier = this.#options.apiKeys;
    if (verifier === undefined) return Promise.reject(new UnauthenticatedError("API keys are not enabled"));
    return verifier.verify(secret);
  }
}

/** One request header's value from any HeaderSource (repeated headers joined with ", "). */
export function header(headers: HeaderSource, name: string): string | undefined {
  const value = typeof headers.get === "function" ? (headers as { get(n: string): string | null }).get(name) : (headers as Record<string, string | string[] | undefined>)[name];
  // Stryker disable next-line ConditionalExpression: an undefined let through is returned as it is, by the last line.
  if (value === null || value === undefined) return undefined;
  return Array.isArray(value) ? value.join(", ") : (value as string);
}

function bearerToken(authorization: string | undefined): string {
  const match = authorization === undefined ? null : /^Bearer +([A-Za-z0-9_\-.]+)$/i.exec(authorization.trim());
  if (!match) throw new UnauthenticatedError("missing or malformed Authorization: Bearer header");
  return match[1] as string;
}
