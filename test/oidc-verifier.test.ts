// OidcVerifier straight (survivors of `npm run mutate` in src/auth: the
// end-to-end suite trusts one well-behaved provider through a gateway, so
// claim paths, tiers, audiences, skew, a provider that is down or lies in its
// discovery document, and the token cache went unseen). Tokens are signed with
// real jose keys and served by a real HTTP provider of the test's own: its
// discovery document and key set can misbehave on demand. One test takes a
// token of a real OpenID provider (oidc-provider).
import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type OidcOptions, OidcVerifier } from "../src/auth/oidc-verifier.js";
import type { Principal } from "../src/auth/principal.js";
import { UnauthenticatedError, UnavailableError } from "../src/shared/errors.js";
import { startIdentityProvider } from "./support/identity-provider.js";

type Alg = "EdDSA" | "ES256" | "RS256" | "PS256";

interface SigningKey {
  readonly kid: string;
  readonly alg: Alg;
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

/** A provider whose answers the test sets: discovery and key set served over real HTTP. */
interface TestProvider {
  readonly issuer: string;
  readonly origin: string;
  readonly hits: { discovery: number; jwks: number };
  /** The discovery answer: status, or a document replacing the right one; "hang" never answers. */
  discovery: { status?: number; document?: Record<string, unknown> } | "hang";
  jwksStatus: number;
  published: SigningKey[];
  sign(claims: JWTPayload, key?: SigningKey): Promise<string>;
  close(): Promise<void>;
}

async function newKey(alg: Alg = "EdDSA"): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `${alg}-${randomUUID()}`;
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

async function startProvider(issuerSuffix = ""): Promise<TestProvider> {
  const hanging: Array<() => void> = [];
  const provider: Omit<TestProvider, "issuer" | "origin"> & { issuer: string; origin: string } = {
    issuer: "",
    origin: "",
    hits: { discovery: 0, jwks: 0 },
    discovery: {},
    jwksStatus: 200,
    published: [await newKey()],
    sign: (claims, key = provider.published[0]!) => new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey),
    close: () =>
      new Promise<void>((resolve) => {
        for (const end of hanging) end();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const json = (status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.url === "/.well-known/openid-configuration") {
      provider.hits.discovery++;
      const d = provider.discovery;
      if (d === "hang") return void hanging.push(() => res.destroy());
      if (d.status !== undefined) return json(d.status, { error: "down" });
      return json(200, d.document ?? { issuer: provider.issuer, jwks_uri: `${provider.origin}/jwks` });
    }
    if (req.url === "/jwks") {
      provider.hits.jwks++;
      if (provider.jwksStatus !== 200) return json(provider.jwksStatus, { error: "down" });
      return json(200, { keys: provider.published.map((k) => k.jwk) });
    }
    json(404, { error: "not found" });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  provider.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  provider.issuer = `${provider.origin}${issuerSuffix}`;
  return provider;
}

const audience = "https://anvil.test";
const nowSec = () => Math.floor(Date.now() / 1000);

function optionsFor(p: TestProvider, extra: Partial<OidcOptions> = {}): OidcOptions {
  return { issuer: p.issuer, audience, tenantClaim: "tenant", rolesClaim: "roles", fixedTenant: undefined, jwksCooldownMs: 0, tier: "free", ...extra };
}

const claimsFor = (p: TestProvider, extra: JWTPayload = {}): JWTPayload => ({
  iss: p.issuer,
  aud: audience,
  sub: `alice-${randomUUID()}`,
  tenant: "acme",
  roles: ["viewer"],
  iat: nowSec(),
  exp: nowSec() + 300,
  ...extra,
});

/** What a refused token was told: the error's class, reason and cause. */
async function refusal(p: Promise<unknown>) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err).toBeDefined();
  return {
    kind: err!.constructor.name,
    reason: (err as UnauthenticatedError).reason,
    cause: err!.cause as Error & { code?: string },
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("OidcVerifier", () => {
  let p: TestProvider;
  beforeAll(async () => {
    p = await startProvider();
  });
  afterAll(() => p?.close());

  it("names its issuer, and claims exactly the tokens its issuer issued", async () => {
    const v = new OidcVerifier(optionsFor(p));
    expect(v.issuer).toBe(p.issuer);
    expect(v.claims(await p.sign(claimsFor(p)))).toBe(true);
    expect(v.claims(await p.sign(claimsFor(p, { iss: `${p.issuer}/other` })))).toBe(false);
    expect(v.claims("not-a-jwt")).toBe(false);
    expect(p.hits.discovery).toBe(0);
  });

  it("accepts the provider's token and names the caller by issuer and subject, with Anvil's roles among the claimed", async () => {
    const v = new OidcVerifier(optionsFor(p));
    const claims = claimsFor(p, { roles: ["editor", "superuser", 7, "worker"] });
    expect(await v.verify(await p.sign(claims))).toEqual({
      subject: claims.sub,
      tenant: "acme",
      roles: ["editor", "worker"],
      credential: { kind: "oidc", id: `${p.issuer}#${claims.sub}` },
      tier: "free",
    });
    const rolesOf = async (roles: unknown) => (await v.verify(await p.sign(claimsFor(p, { roles })))).roles;
    expect(await rolesOf("viewer  superuser worker")).toEqual(["viewer", "worker"]);
    expect(await rolesOf(undefined)).toEqual([]);
    expect(await rolesOf({ 0: "admin" })).toEqual([]);
    expect(await rolesOf(7)).toEqual([]);
  });

  it("reads the tenant and roles at dotted claim paths, or takes a fixed tenant", async () => {
    const v = new OidcVerifier(optionsFor(p, { tenantClaim: "org.tenant", rolesClaim: "realm_access.roles" }));
    const principal = await v.verify(await p.sign(claimsFor(p, { tenant: "wrong", org: { tenant: "globex" }, realm_access: { roles: ["admin"] } })));
    expect(principal).toMatchObject({ tenant: "globex", roles: ["admin"] });
    for (const org of [null, "globex", { tenant: "" }, { tenant: 7 }, {}]) {
      const r = await refusal(v.verify(await p.sign(claimsFor(p, { org }))));
      expect({ kind: r.kind, why: r.cause.message }, JSON.stringify(org)).toEqual({ kind: "UnauthenticatedError", why: "OIDC token has no org.tenant claim" });
    }
    expect((await v.verify(await p.sign(claimsFor(p, { org: { tenant: "x" }, realm_access: null })))).roles).toEqual([]);
    const fixed = new OidcVerifier(optionsFor(p, { fixedTenant: "initech" }));
    expect((await fixed.verify(await p.sign(claimsFor(p, { tenant: undefined })))).tenant).toBe("initech");
    expect((await fixed.verify(await p.sign(claimsFor(p, { tenant: "acme" })))).tenant).toBe("initech");
  });

  it("takes the tier from the tier claim when one is configured and names a tier, else the tenant's, else the default", async () => {
    const tenantTiers = new Map([["globex", "enterprise" as const]]);
    const v = new OidcVerifier(optionsFor(p, { tierClaim: "plan", tenantTiers, tier: "pro" }));
    const tierOf = async (extra: JWTPayload, verifier = v) => (await verifier.verify(await p.sign(claimsFor(p, extra)))).tier;
    expect(await tierOf({ plan: "free" })).toBe("free");
    expect(await tierOf({ plan: "free", tenant: "globex" })).toBe("free");
    expect(await tierOf({ plan: "platinum", tenant: "globex" })).toBe("enterprise");
    expect(await tierOf({ plan: 7 })).toBe("pro");
    expect(await tierOf({})).toBe("pro");
    // Without a tier claim configured, a token's claim is not read.
    expect(await tierOf({ tier: "enterprise", plan: "enterprise" }, new OidcVerifier(optionsFor(p, { tier: "pro" })))).toBe("pro");
  });

  it("accepts Anvil's audience, and the console's client id only when one is configured", async () => {
    const plain = new OidcVerifier(optionsFor(p));
    const withConsole = new OidcVerifier(optionsFor(p, { consoleClientId: "anvil-console" }));
    const forConsole = await p.sign(claimsFor(p, { aud: "anvil-console" }));
    expect((await withConsole.verify(forConsole)).tenant).toBe("acme");
    expect((await withConsole.verify(await p.sign(claimsFor(p)))).tenant).toBe("acme");
    expect((await refusal(plain.verify(forConsole))).cause.code).toBe("ERR_JWT_CLAIM_VALIDATION_FAILED");
    expect((await refusal(withConsole.verify(await p.sign(claimsFor(p, { aud: "someone-else" }))))).kind).toBe("UnauthenticatedError");
  });

  it("refuses another issuer, a token without sub or exp, and an expired one as EXPIRED", async () => {
    const v = new OidcVerifier(optionsFor(p));
    const refused = async (claims: JWTPayload) => {
      const r = await refusal(v.verify(await p.sign(claims)));
      return { kind: r.kind, reason: r.reason, code: r.cause.code };
    };
    const bad = { kind: "UnauthenticatedError", reason: "UNAUTHENTICATED", code: "ERR_JWT_CLAIM_VALIDATION_FAILED" };
    expect(await refused(claimsFor(p, { iss: "https://evil.example" }))).toEqual(bad);
    expect(await refused(claimsFor(p, { sub: undefined }))).toEqual(bad);
    expect(await refused(claimsFor(p, { exp: undefined }))).toEqual(bad);
    expect(await refused(claimsFor(p, { exp: nowSec() - 120 }))).toEqual({ ...bad, reason: "EXPIRED", code: "ERR_JWT_EXPIRED" });
  });

  it("allows 30 s of clock skew by default, or the tolerance it is given", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const t = 1_900_000_000;
    const token = await p.sign(claimsFor(p, { iat: t - 60, exp: t }));
    vi.setSystemTime((t + 29) * 1000);
    expect((await new OidcVerifier(optionsFor(p)).verify(token)).tenant).toBe("acme");
    vi.setSystemTime((t + 31) * 1000);
    expect((await refusal(new OidcVerifier(optionsFor(p)).verify(token))).reason).toBe("EXPIRED");
    vi.setSystemTime((t + 4) * 1000);
    expect((await new OidcVerifier(optionsFor(p, { clockToleranceSec: 5 })).verify(token)).tenant).toBe("acme");
    vi.setSystemTime((t + 6) * 1000);
    expect((await refusal(new OidcVerifier(optionsFor(p, { clockToleranceSec: 5 })).verify(token))).reason).toBe("EXPIRED");
  });

  it("accepts RS256, PS256, ES256 and EdDSA, and no shared-secret algorithm even under a published kid", async () => {
    const keys = await Promise.all((["RS256", "PS256", "ES256"] as const).map((alg) => newKey(alg)));
    p.published.push(...keys);
    try {
      const v = new OidcVerifier(optionsFor(p));
      for (const key of [p.published[0]!, ...keys]) expect((await v.verify(await p.sign(claimsFor(p), key))).tenant, key.alg).toBe("acme");
      const hs = await new SignJWT(claimsFor(p)).setProtectedHeader({ alg: "HS256", kid: p.published[0]!.kid }).sign(randomBytes(32));
      expect(await refusal(v.verify(hs))).toMatchObject({ kind: "UnauthenticatedError", cause: { code: "ERR_JOSE_ALG_NOT_ALLOWED" } });
    } finally {
      p.published.splice(1);
    }
  });

  it("refuses a forged signature, a kid never published and a token that is no JWS as UNAUTHENTICATED", async () => {
    const v = new OidcVerifier(optionsFor(p));
    const rogue = await newKey();
    const underPublishedKid = await new SignJWT(claimsFor(p)).setProtectedHeader({ alg: "EdDSA", kid: p.published[0]!.kid }).sign(rogue.privateKey);
    const codes = [];
    for (const token of [underPublishedKid, await p.sign(claimsFor(p), rogue), "a.b", `${(await p.sign(claimsFor(p))).split(".").slice(0, 2).join(".")}.`]) {
      const r = await refusal(v.verify(token));
      expect(r.kind).toBe("UnauthenticatedError");
      codes.push(r.cause.code);
    }
    expect(codes).toEqual(["ERR_JWS_SIGNATURE_VERIFICATION_FAILED", "ERR_JWKS_NO_MATCHING_KEY", "ERR_JWS_INVALID", "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"]);
  });

  it("discovers once, and fetches the key set again for a kid it does not know (cooldown 0 here)", async () => {
    const own = await startProvider();
    try {
      const v = new OidcVerifier(optionsFor(own));
      await v.verify(await own.sign(claimsFor(own)));
      await v.verify(await own.sign(claimsFor(own)));
      expect(own.hits).toEqual({ discovery: 1, jwks: 1 });
      const rotated = await newKey();
      own.published.unshift(rotated);
      expect((await v.verify(await own.sign(claimsFor(own), rotated))).tenant).toBe("acme");
      expect(own.hits).toEqual({ discovery: 1, jwks: 2 });
    } finally {
      await own.close();
    }
  });

  it("waits out its cooldown before fetching the key set again for an unknown kid", async () => {
    const own = await startProvider();
    try {
      const v = new OidcVerifier(optionsFor(own, { jwksCooldownMs: 60_000 }));
      await v.verify(await own.sign(claimsFor(own)));
      const rotated = await newKey();
      own.published.unshift(rotated);
      expect((await refusal(v.verify(await own.sign(claimsFor(own), rotated)))).cause.code).toBe("ERR_JWKS_NO_MATCHING_KEY");
      expect(own.hits.jwks).toBe(1);
    } finally {
      await own.close();
    }
  });

  it("is UNAVAILABLE while discovery fails or lies, and discovers again on the next call", async () => {
    const own = await startProvider();
    try {
      const v = new OidcVerifier(optionsFor(own));
      const token = await own.sign(claimsFor(own));
      const url = `${own.issuer}/.well-known/openid-configuration`;
      const unavailable = async () => {
        const r = await refusal(v.verify(token));
        expect(r.kind).toBe("UnavailableError");
        return r.cause.message;
      };
      own.discovery = { status: 503 };
      expect(await unavailable()).toBe(`${url} answered 503`);
      own.discovery = { document: { issuer: "https://evil.example", jwks_uri: `${own.origin}/jwks` } };
      expect(await unavailable()).toBe(`${url} names issuer https://evil.example, not ${own.issuer}`);
      own.discovery = { document: { jwks_uri: `${own.origin}/jwks` } };
      expect(await unavailable()).toBe(`${url} names issuer undefined, not ${own.issuer}`);
      own.discovery = { document: { issuer: own.issuer, jwks_uri: 7 } };
      expect(await unavailable()).toBe(`${url} has no jwks_uri`);
      own.discovery = {};
      expect((await v.verify(token)).tenant).toBe("acme");
      expect(own.hits.discovery).toBe(5);
    } finally {
      await own.close();
    }
  });

  it("is UNAVAILABLE, not the caller's fault, when the key set cannot be fetched", async () => {
    const own = await startProvider();
    try {
      own.jwksStatus = 500;
      const r = await refusal(new OidcVerifier(optionsFor(own)).verify(await own.sign(claimsFor(own))));
      expect(r.kind).toBe("UnavailableError");
      expect(r.cause.code).toBe("ERR_JOSE_GENERIC");
    } finally {
      await own.close();
    }
  });

  it("discovers at the issuer without its trailing slash", async () => {
    const own = await startProvider("/");
    try {
      expect(own.issuer.endsWith("/")).toBe(true);
      expect((await new OidcVerifier(optionsFor(own)).verify(await own.sign(claimsFor(own)))).tenant).toBe("acme");
    } finally {
      await own.close();
    }
  });

  it("answers a verified token from its cache, the same principal, until the token's exp", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const t = 1_900_000_000;
    vi.setSystemTime(t * 1000);
    const v = new OidcVerifier(optionsFor(p));
    const token = await p.sign(claimsFor(p, { iat: t, exp: t + 60 }));
    expect(v.cached(token)).toBeUndefined();
    const first = await v.verify(token);
    expect(v.cached(token)).toBe(first);
    expect(await v.verify(token)).toBe(first);
    vi.setSystemTime((t + 60) * 1000 - 1);
    expect(v.cached(token)).toBe(first);
    vi.setSystemTime((t + 60) * 1000);
    expect(v.cached(token)).toBeUndefined();
    vi.setSystemTime(t * 1000);
    expect(v.cached(token)).toBeUndefined();
  });

  it("accepts a token of a real OpenID provider (oidc-provider, client-credentials grant)", async () => {
    const idp = await startIdentityProvider(audience, [{ id: "ci", secret: "s3cret-s3cret", claims: { tenant: "acme", roles: ["editor"] } }]);
    try {
      const principal = await new OidcVerifier({ ...optionsFor(p), issuer: idp.issuer }).verify(await idp.token("ci"));
      expect(principal).toEqual({ subject: "ci", tenant: "acme", roles: ["editor"], credential: { kind: "oidc", id: `${idp.issuer}#ci` }, tier: "free" });
    } finally {
      await idp.close();
    }
  });

  it("remembers 10,000 tokens, then evicts the oldest", async () => {
    const v = new OidcVerifier(optionsFor(p));
    const base = claimsFor(p);
    const tokens: string[] = [];
    for (let i = 0; i <= 10_000; i++) tokens.push(await p.sign({ ...base, sub: `s${i}` }));
    const principals: Principal[] = [];
    for (const token of tokens.slice(0, 10_000)) principals.push(await v.verify(token));
    expect(v.cached(tokens[0]!)).toBe(principals[0]);
    await v.verify(tokens[10_000]!);
    expect(v.cached(tokens[0]!)).toBeUndefined();
    expect(v.cached(tokens[1]!)).toBe(principals[1]);
  });

  it("gives up on a provider whose discovery never answers within 5 s, UNAVAILABLE", async () => {
    const own = await startProvider();
    try {
      own.discovery = "hang";
      const r = await refusal(new OidcVerifier(optionsFor(own)).verify(await own.sign(claimsFor(own))));
      expect(r.kind).toBe("UnavailableError");
      expect(r.cause.name).toBe("TimeoutError");
    } finally {
      await own.close();
    }
  }, 30_000);
});
