import { randomBytes, randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { generateKeyPair, importJWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../gen/anvil/apikeys/v1/apikeys_pb.js";
import { OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { clientFor, protocols } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import { startIdentityProvider, type TestIdentityProvider } from "./support/identity-provider.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * OpenID Connect against a real provider (`oidc-provider`, client-credentials
 * grant, RS256 JWT access tokens) running next to a real gateway: tokens are
 * accepted on every protocol, the provider rotates its signing key while the
 * gateway runs and the new key's tokens are accepted without a restart, and
 * every bad token — wrong audience or issuer, expired, HS256, signed by a key
 * the provider never published — is UNAUTHENTICATED with the generic message.
 */

const audience = "https://anvil.test";
const clients = [
  // `superuser` is not an Anvil role: ignored, never mapped to anything.
  { id: "acme-ci", secret: randomBytes(16).toString("hex"), claims: { tenant: "acme", roles: ["editor", "superuser"] } },
  { id: "globex-ops", secret: randomBytes(16).toString("hex"), claims: { tenant: "globex", roles: ["admin"] } },
  { id: "tenantless", secret: randomBytes(16).toString("hex"), claims: { roles: ["admin"] } },
];

describe.each(databaseKinds)("OpenID Connect on %s", (kind) => {
  let idp: TestIdentityProvider;
  let server: TestServer;
  const now = () => Math.floor(Date.now() / 1000);
  /** Signs a token with the provider's current (published) private key and exactly these claims. */
  const signWithProviderKey = async (claims: Record<string, unknown>) => {
    const jwk = idp.signingKey();
    return new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: jwk.kid! }).sign(await importJWK(jwk, "RS256"));
  };
  const refused = async (token: string, reason = "UNAUTHENTICATED") => {
    const err = await expectCode(clientFor(OperationService, "connect-json", server.baseUrl, token).listOperations({}), Code.Unauthenticated);
    expect(err.rawMessage).toBe("missing or invalid credentials");
    expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe(reason);
  };

  beforeAll(async () => {
    idp = await startIdentityProvider(audience, clients);
    server = await startServer(kind, {
      env: {
        ANVIL_OIDC_ISSUER: idp.issuer,
        ANVIL_OIDC_AUDIENCE: audience,
        ANVIL_OIDC_JWKS_COOLDOWN_MS: "200",
        ANVIL_TENANT_TIERS: JSON.stringify({ globex: "enterprise" }),
      },
    });
  });
  afterAll(async () => {
    await server?.close();
    await idp?.close();
  });

  describe.each(protocols)("over %s", (protocol) => {
    it("accepts the provider's token with the roles it names, unary and streaming", async () => {
      const token = await idp.token("acme-ci");
      const ops = clientFor(OperationService, protocol, server.baseUrl, token);
      await expect(ops.listOperations({})).resolves.toBeDefined();
      await expectCode(ops.watchOperation({ id: randomUUID() })[Symbol.asyncIterator]().next(), Code.NotFound);
      // An editor, not more: users stay out of reach.
      await expectCode(clientFor(UserService, protocol, server.baseUrl, token).listUsers({}), Code.PermissionDenied);
    });
  });

  it("accepts the token over REST, and names the caller by issuer and subject", async () => {
    const token = await idp.token("acme-ci");
    const res = await fetch(`${server.baseUrl}/v1/operations`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const keys = clientFor(ApiKeyService, "connect-json", server.baseUrl, token);
    const { apiKey } = await keys.createApiKey({ apiKey: { displayName: "from-oidc", roles: ["viewer"] } });
    expect(apiKey!.creator).toBe(`oidc:${idp.issuer}#acme-ci`);
  });

  it("takes the rate-limit tier from the tier claim, else the tenant's default tier, else ANVIL_OIDC_TIER", async () => {
    const policyOf = async (token: string) => {
      const res = await fetch(`${server.baseUrl}/v1/operations`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      return res.headers.get("ratelimit-policy");
    };
    const claimed = { iss: idp.issuer, aud: audience, sub: `pro-${randomUUID()}`, tenant: "acme", roles: ["viewer"], iat: now(), exp: now() + 60 };
    expect(await policyOf(await signWithProviderKey({ ...claimed, tier: "pro" }))).toMatch(/^"pro";q=200;w=120$/);
    // A claim that names no tier is ignored, not trusted.
    expect(await policyOf(await signWithProviderKey({ ...claimed, sub: `x-${randomUUID()}`, tier: "platinum" }))).toMatch(/^"free";/);
    expect(await policyOf(await idp.token("globex-ops"))).toMatch(/^"enterprise";q=2000;w=120$/);
    expect(await policyOf(await idp.token("acme-ci"))).toMatch(/^"free";q=20;w=120$/);
  });

  it("takes the tenant from its claim", async () => {
    const acmeKeys = clientFor(ApiKeyService, "connect-json", server.baseUrl, await idp.token("acme-ci"));
    const { apiKey } = await acmeKeys.createApiKey({ apiKey: { displayName: "acme-only", roles: ["viewer"] } });
    const globexKeys = clientFor(ApiKeyService, "connect-json", server.baseUrl, await idp.token("globex-ops"));
    await expectCode(globexKeys.getApiKey({ id: apiKey!.id }), Code.NotFound);
    await expect(clientFor(UserService, "connect-json", server.baseUrl, await idp.token("globex-ops")).listUsers({})).resolves.toBeDefined();
  });

  it("refuses every bad token with the generic UNAUTHENTICATED", async () => {
    const claims = () => ({ iss: idp.issuer, aud: audience, sub: "mallory", tenant: "acme", roles: ["admin"], iat: now(), exp: now() + 300 });
    await refused(await idp.token("acme-ci", "https://other.example"));
    await refused(await idp.token("tenantless"));
    await refused(await signWithProviderKey({ ...claims(), iss: "https://evil.example" }));
    await refused(await signWithProviderKey({ ...claims(), aud: "https://other.example" }));
    await refused(await signWithProviderKey({ ...claims(), exp: now() - 120 }), "EXPIRED");
    await refused(await signWithProviderKey({ ...claims(), nbf: now() + 120 }));
    const { sub: _sub, ...noSubject } = claims();
    await refused(await signWithProviderKey(noSubject));
    // HS256 claiming the issuer, keyed with the published kid: shared-secret algorithms are never the provider's.
    await refused(await new SignJWT(claims()).setProtectedHeader({ alg: "HS256", kid: idp.signingKey().kid! }).sign(randomBytes(32)));
    // Keys the provider never published, under its own kid and under a new one.
    const { privateKey } = await generateKeyPair("RS256");
    await refused(await new SignJWT(claims()).setProtectedHeader({ alg: "RS256", kid: idp.signingKey().kid! }).sign(privateKey));
    await refused(await new SignJWT(claims()).setProtectedHeader({ alg: "RS256", kid: "never-published" }).sign(privateKey));
    // A tampered payload on a real token.
    const [h, , s] = (await idp.token("acme-ci")).split(".");
    await refused(`${h}.${Buffer.from(JSON.stringify(claims())).toString("base64url")}.${s}`);
  });

  it("accepts tokens of a key the provider rotated in while the gateway runs", async () => {
    const before = await idp.token("globex-ops");
    const oldKid = idp.signingKey().kid;
    await idp.rotate();
    const after = await idp.token("globex-ops");
    expect(JSON.parse(Buffer.from(after.split(".")[0]!, "base64url").toString()).kid).not.toBe(oldKid);
    const ops = (token: string) => clientFor(OperationService, "grpc", server.baseUrl, token).listOperations({});
    // Within the key set's cooldown (200 ms here) the new kid is fetched.
    const start = Date.now();
    while (!(await ops(after).then(() => true, () => false))) {
      expect(Date.now() - start).toBeLessThan(3_000);
      await new Promise((r) => setTimeout(r, 50));
    }
    // The old key is still published: its tokens still work.
    await expect(ops(before)).resolves.toBeDefined();
    // A key never published stays refused after the rotation too.
    const { privateKey } = await generateKeyPair("ES256");
    await refused(
      await new SignJWT({ tenant: "acme", roles: ["admin"] }).setProtectedHeader({ alg: "ES256", kid: "rogue" }).setIssuer(idp.issuer).setAudience(audience).setSubject("x").setIssuedAt().setExpirationTime("5m").sign(privateKey),
    );
  });
});
