import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import Provider from "oidc-provider";

/** A client of the test provider and the claims its tokens carry. */
export interface TestOidcClient {
  readonly id: string;
  readonly secret: string;
  readonly claims: Record<string, unknown>;
}

/**
 * A browser client of the test provider: public (no secret), authorization code with PKCE,
 * people signing in through the provider's own login and consent pages (oidc-provider's
 * development interactions: any login name with any password).
 */
export interface TestBrowserClient {
  readonly id: string;
  readonly redirectUri: string;
  /** The claims of each person by login name, given with the `anvil` scope (e.g. tenant and roles). */
  readonly people: Readonly<Record<string, Record<string, unknown>>>;
}

/** A real OpenID provider (the `oidc-provider` package) on a free loopback port. */
export interface TestIdentityProvider {
  /** Its issuer identifier, `http://127.0.0.1:<port>`. */
  readonly issuer: string;
  /** An access token (a JWT) for `client` by the client-credentials grant, for `resource` (the audience). */
  token(clientId: string, resource?: string): Promise<string>;
  /** The private key it signs with now (to forge tokens the published key verifies, e.g. expired ones). */
  signingKey(): JWK;
  /** Rotates its signing key: a new key signs from now on; the old one stays published. */
  rotate(): Promise<void>;
  /** Registers a browser client (its redirect URI is often known only once the gateway listens). */
  addBrowserClient(client: TestBrowserClient): void;
  close(): Promise<void>;
}

/** Starts a provider issuing RS256 JWT access tokens for `audience` to `clients`. */
export async function startIdentityProvider(audience: string, clients: readonly TestOidcClient[]): Promise<TestIdentityProvider> {
  let handler: ReturnType<Provider["callback"]> | undefined;
  const server: Server = createServer((req, res) => handler!(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const keys: JWK[] = [];
  const browsers: TestBrowserClient[] = [];
  const person = (login: string) => browsers.map((b) => b.people[login]).find((p) => p !== undefined) ?? {};
  const newKey = async () => {
    const { privateKey } = await generateKeyPair("RS256", { extractable: true });
    const jwk = await exportJWK(privateKey);
    return { ...jwk, kid: `k${keys.length + 1}-${Date.now()}`, alg: "RS256", use: "sig" };
  };
  const build = () => {
    const provider = new Provider(issuer, {
      clients: [
        ...clients.map((c) => ({
          client_id: c.id,
          client_secret: c.secret,
          grant_types: ["client_credentials"],
          redirect_uris: [],
          response_types: [],
        })),
        ...browsers.map((b) => ({
          client_id: b.id,
          token_endpoint_auth_method: "none",
          grant_types: ["authorization_code"],
          response_types: ["code"],
          redirect_uris: [b.redirectUri],
        })),
      ],
      // The claims of the `anvil` scope go into the ID token itself: the console signs in with it.
      claims: { openid: ["sub"], profile: ["name"], anvil: ["tenant", "roles"] },
      conformIdTokenClaims: false,
      findAccount: (_ctx: unknown, sub: string) => ({ accountId: sub, claims: () => ({ sub, ...person(sub) }) }),
      // The first key signs; all are published at jwks_uri.
      jwks: { keys: [...keys] },
      features: {
        clientCredentials: { enabled: true },
        // The provider's own login and consent pages, for the browser clients.
        devInteractions: { enabled: browsers.length > 0 },
        resourceIndicators: {
          enabled: true,
          // A browser client asks for no API access token: it signs in with its ID token.
          defaultResource: (_ctx: unknown, client: { clientId: string }) => (browsers.some((b) => b.id === client.clientId) ? undefined : audience),
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, resource: string) => ({
            scope: "api",
            audience: resource,
            accessTokenFormat: "jwt",
            accessTokenTTL: 300,
            jwt: { sign: { alg: "RS256" } },
          }),
        },
      },
      extraTokenClaims: (_ctx: unknown, token: { clientId?: string }) => clients.find((c) => c.id === token.clientId)?.claims,
    } as ConstructorParameters<typeof Provider>[1]);
    handler = provider.callback();
  };
  keys.push(await newKey());
  build();
  return {
    issuer,
    token: async (clientId, resource = audience) => {
      const client = clients.find((c) => c.id === clientId)!;
      const res = await fetch(`${issuer}/token`, {
        method: "POST",
        headers: {
          authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString("base64")}`,
          "content-type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ grant_type: "client_credentials", resource, scope: "api" }),
      });
      const body = (await res.json()) as { access_token?: string };
      if (!res.ok || body.access_token === undefined) throw new Error(`token request failed: ${res.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    signingKey: () => keys[0]!,
    rotate: async () => {
      keys.unshift(await newKey());
      build();
    },
    addBrowserClient: (client) => {
      browsers.push(client);
      build();
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
