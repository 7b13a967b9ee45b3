// TokenVerifier and mintServiceToken straight, with real jose keys and
// tokens (survivors of `npm run mutate` in src/auth: the end-to-end suites
// reach the verifier through a gateway, where a skew, a lifetime bound or a
// cache rule one second off is invisible). The clock is vitest's fake Date
// only where a rule is about an exact instant; jose reads the same clock.
import { createSecretKey, randomBytes } from "node:crypto";
import { decodeJwt, decodeProtectedHeader, type JWTPayload, SignJWT } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ServiceAccountKey } from "../src/auth/key-store.js";
import { mintServiceToken } from "../src/auth/mint-token.js";
import { TokenVerifier } from "../src/auth/token-verifier.js";
import { PermissionDeniedError, UnauthenticatedError } from "../src/shared/errors.js";

type MutableKey = { -readonly [K in keyof ServiceAccountKey]: ServiceAccountKey[K] };

function saKey(keyId: string, fields: Partial<MutableKey> = {}): MutableKey {
  const secretBytes = randomBytes(32);
  return {
    keyId,
    principal: `${keyId}@acme`,
    tenant: "acme",
    roles: ["editor"],
    secret: createSecretKey(secretBytes),
    secretBytes,
    expiresAt: null,
    tier: "pro",
    ...fields,
  };
}

const nowSec = () => Math.floor(Date.now() / 1000);

/** Signs exactly `claims` (nothing added) with `key`'s secret, HS256 and its kid unless `header` says otherwise. */
function sign(key: ServiceAccountKey, claims: JWTPayload, header: { alg?: string; kid?: string | null } = {}, secret: Uint8Array = key.secretBytes) {
  const kid = header.kid === null ? {} : { kid: header.kid ?? key.keyId };
  return new SignJWT(claims).setProtectedHeader({ alg: header.alg ?? "HS256", ...kid }).sign(secret);
}

/** Valid claims for `key`, issued now for an hour. */
const claimsOf = (key: ServiceAccountKey, extra: JWTPayload = {}): JWTPayload => ({
  sub: "ci",
  tenant: key.tenant,
  roles: ["viewer"],
  iat: nowSec(),
  exp: nowSec() + 3600,
  ...extra,
});

/** The refusal's reason and cause (what the log sees; the client sees only the generic message). */
async function refusal(p: Promise<unknown>): Promise<{ reason: string; cause: Error & { code?: string; claim?: string } }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UnauthenticatedError);
  const refused = err as UnauthenticatedError;
  return { reason: refused.reason, cause: refused.cause as Error & { code?: string; claim?: string } };
}

const why = async (p: Promise<unknown>) => (await refusal(p)).cause.message;

afterEach(() => {
  vi.useRealTimers();
});

describe("TokenVerifier", () => {
  const setup = (options?: ConstructorParameters<typeof TokenVerifier>[1], ...fields: Array<Partial<MutableKey>>) => {
    const keys = new Map<string, MutableKey>();
    const made = (fields.length === 0 ? [{}] : fields).map((f, i) => saKey(`key-${i}`, f));
    for (const k of made) keys.set(k.keyId, k);
    return { keys, key: made[0]!, made, verifier: new TokenVerifier(keys, options) };
  };

  it("accepts a token its key signed and names the caller from the token and the key", async () => {
    const { key, verifier } = setup(undefined, { tenant: "globex", roles: ["admin"], tier: "enterprise" });
    const principal = await verifier.verify(await sign(key, claimsOf(key, { sub: "deployer", roles: ["editor", "worker"] })));
    expect(principal).toEqual({
      subject: "deployer",
      tenant: "globex",
      roles: ["editor", "worker"],
      credential: { kind: "service_account", id: "key-0" },
      tier: "enterprise",
    });
  });

  it("refuses a token without a kid or with a kid the keys file does not hold", async () => {
    const { key, verifier } = setup();
    expect(await refusal(verifier.verify(await sign(key, claimsOf(key), { kid: null })))).toMatchObject({ reason: "UNAUTHENTICATED", cause: { message: "unknown signing key" } });
    expect(await why(verifier.verify(await sign(key, claimsOf(key), { kid: "key-gone" })))).toBe("unknown signing key");
  });

  it("refuses a token of an expired key as EXPIRED, at the key's expiry instant already", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const at = new Date("2030-01-01T00:00:00Z");
    vi.setSystemTime(at);
    const { made, verifier } = setup(undefined, { expiresAt: new Date(at.getTime() - 60_000) }, { expiresAt: at }, { expiresAt: new Date(at.getTime() + 1) });
    const [past, now, later] = made as [MutableKey, MutableKey, MutableKey];
    expect(await refusal(verifier.verify(await sign(past, claimsOf(past))))).toMatchObject({ reason: "EXPIRED", cause: { message: "signing key expired" } });
    expect(await refusal(verifier.verify(await sign(now, claimsOf(now))))).toMatchObject({ reason: "EXPIRED", cause: { message: "signing key expired" } });
    expect((await verifier.verify(await sign(later, claimsOf(later)))).credential.id).toBe(later.keyId);
  });

  it("accepts HS256 only: another HMAC with the same secret, or no signature at all, is refused", async () => {
    const { key, verifier } = setup();
    expect((await refusal(verifier.verify(await sign(key, claimsOf(key), { alg: "HS512" })))).cause.code).toBe("ERR_JOSE_ALG_NOT_ALLOWED");
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    expect((await refusal(verifier.verify(`${enc({ alg: "none", kid: key.keyId })}.${enc(claimsOf(key))}.`))).reason).toBe("UNAUTHENTICATED");
    // Signed with another secret under the key's kid.
    expect((await refusal(verifier.verify(await sign(key, claimsOf(key), {}, randomBytes(32))))).cause.code).toBe("ERR_JWS_SIGNATURE_VERIFICATION_FAILED");
  });

  it("requires sub, exp and iat", async () => {
    const { key, verifier } = setup();
    for (const claim of ["sub", "exp", "iat"] as const) {
      const { [claim]: _left, ...rest } = claimsOf(key);
      const { reason, cause } = await refusal(verifier.verify(await sign(key, rest)));
      expect({ reason, code: cause.code, claim: cause.claim }, claim).toEqual({ reason: "UNAUTHENTICATED", code: "ERR_JWT_CLAIM_VALIDATION_FAILED", claim });
    }
  });

  it("allows 30 s of clock skew by default, on exp and on iat", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const t = 1_900_000_000;
    const { key, verifier } = setup();
    vi.setSystemTime((t + 29) * 1000);
    // exp = t: 29 s past, still within the tolerance.
    expect((await verifier.verify(await sign(key, claimsOf(key, { iat: t - 60, exp: t })))).subject).toBe("ci");
    vi.setSystemTime((t + 31) * 1000);
    expect(await refusal(verifier.verify(await sign(key, claimsOf(key, { sub: "late", iat: t - 60, exp: t }))))).toMatchObject({ reason: "EXPIRED", cause: { code: "ERR_JWT_EXPIRED" } });
    // iat 30 s ahead of this clock is accepted, 30.001 s is not.
    vi.setSystemTime(t * 1000 - 30_000);
    expect((await verifier.verify(await sign(key, claimsOf(key, { iat: t, exp: t + 60 })))).subject).toBe("ci");
    vi.setSystemTime(t * 1000 - 30_001);
    expect(await refusal(verifier.verify(await sign(key, claimsOf(key, { sub: "early", iat: t, exp: t + 60 }))))).toMatchObject({ reason: "UNAUTHENTICATED", cause: { message: "iat in the future" } });
  });

  it("takes another clock tolerance when told", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const t = 1_900_000_000;
    const { key, verifier } = setup({ clockToleranceSec: 5 });
    vi.setSystemTime((t + 4) * 1000);
    expect((await verifier.verify(await sign(key, claimsOf(key, { iat: t - 60, exp: t })))).subject).toBe("ci");
    vi.setSystemTime((t + 6) * 1000);
    expect((await refusal(verifier.verify(await sign(key, claimsOf(key, { sub: "x", iat: t - 60, exp: t }))))).reason).toBe("EXPIRED");
    vi.setSystemTime(t * 1000 - 5_001);
    expect((await refusal(verifier.verify(await sign(key, claimsOf(key, { sub: "y", iat: t, exp: t + 60 }))))).cause.message).toBe("iat in the future");
  });

  it("refuses a lifetime (exp − iat) beyond 24 h by default, or the maximum it is given", async () => {
    const { key, verifier } = setup();
    const iat = nowSec();
    expect((await verifier.verify(await sign(key, claimsOf(key, { iat, exp: iat + 86_400 })))).subject).toBe("ci");
    expect(await why(verifier.verify(await sign(key, claimsOf(key, { iat, exp: iat + 86_401 }))))).toBe("token lifetime exceeds 86400 s");
    const short = setup({ maxLifetimeSec: 60 });
    expect((await short.verifier.verify(await sign(short.key, claimsOf(short.key, { iat, exp: iat + 60 })))).subject).toBe("ci");
    expect(await why(short.verifier.verify(await sign(short.key, claimsOf(short.key, { iat, exp: iat + 61 }))))).toBe("token lifetime exceeds 60 s");
  });

  it("refuses a tenant claim other than its key's, and a roles claim that is not a list of strings", async () => {
    const { key, verifier } = setup();
    expect(await why(verifier.verify(await sign(key, claimsOf(key, { tenant: "globex" }))))).toBe("token tenant does not match its key");
    const { tenant: _t, ...tenantless } = claimsOf(key);
    expect(await why(verifier.verify(await sign(key, tenantless)))).toBe("token tenant does not match its key");
    for (const roles of ["viewer", ["viewer", 7], undefined, { 0: "viewer" }]) {
      expect(await why(verifier.verify(await sign(key, claimsOf(key, { roles }))))).toBe("token roles claim must be a list of strings");
    }
    expect((await verifier.verify(await sign(key, claimsOf(key, { roles: [] })))).roles).toEqual([]);
  });

  it("refuses roles beyond the key's grant as PERMISSION_DENIED naming the key", async () => {
    const { key, verifier } = setup(undefined, { roles: ["viewer"] });
    const err = await verifier.verify(await sign(key, claimsOf(key, { roles: ["viewer", "editor"] }))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermissionDeniedError);
    expect((err as PermissionDeniedError).metadata).toEqual({ key_id: key.keyId });
  });

  it("answers a verified token from its cache, the same principal, until the token's exp plus the tolerance", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const t = 1_900_000_000;
    vi.setSystemTime(t * 1000);
    const { key, verifier } = setup();
    const token = await sign(key, claimsOf(key, { iat: t, exp: t + 60 }));
    expect(verifier.cached(token)).toBeUndefined();
    const first = await verifier.verify(token);
    expect(verifier.cached(token)).toBe(first);
    expect(await verifier.verify(token)).toBe(first);
    vi.setSystemTime((t + 60 + 30) * 1000 - 1);
    expect(verifier.cached(token)).toBe(first);
    vi.setSystemTime((t + 60 + 30) * 1000);
    expect(verifier.cached(token)).toBeUndefined();
    // Dropped, not merely skipped: earlier again, it is still not cached.
    vi.setSystemTime(t * 1000);
    expect(verifier.cached(token)).toBeUndefined();
  });

  it("stops answering a cached token once its key is replaced, removed or expired", async () => {
    const { keys, made, verifier } = setup(undefined, {}, {}, {});
    const [replaced, removed, expiring] = made as [MutableKey, MutableKey, MutableKey];
    const tokens = await Promise.all(made.map(async (k) => sign(k, claimsOf(k))));
    for (const token of tokens) await verifier.verify(token);
    for (const token of tokens) expect(verifier.cached(token)).toBeDefined();
    keys.set(replaced.keyId, { ...replaced });
    keys.delete(removed.keyId);
    expiring.expiresAt = new Date(Date.now() - 1);
    for (const token of tokens) expect(verifier.cached(token)).toBeUndefined();
    // The replacement (same secret here) verifies the token again, and caches it under itself.
    const again = await verifier.verify(tokens[0]!);
    expect(verifier.cached(tokens[0]!)).toBe(again);
  });

  it("caches nothing with a cache size of 0, and evicts the oldest token when full", async () => {
    const none = setup({ cacheSize: 0 });
    const token = await sign(none.key, claimsOf(none.key));
    await none.verifier.verify(token);
    expect(none.verifier.cached(token)).toBeUndefined();

    const two = setup({ cacheSize: 2 });
    const tokens = await Promise.all(["a", "b", "c"].map((sub) => sign(two.key, claimsOf(two.key, { sub }))));
    for (const t of tokens.slice(0, 2)) await two.verifier.verify(t);
    expect(tokens.map((t) => two.verifier.cached(t)?.subject)).toEqual(["a", "b", undefined]);
    await two.verifier.verify(tokens[2]!);
    expect(tokens.map((t) => two.verifier.cached(t)?.subject)).toEqual([undefined, "b", "c"]);
  });

  it("forgets the cached tokens of one key only", async () => {
    const { made, verifier } = setup(undefined, {}, {});
    const [a, b] = made as [MutableKey, MutableKey];
    const tokenA = await sign(a, claimsOf(a));
    const tokenB = await sign(b, claimsOf(b));
    await verifier.verify(tokenA);
    await verifier.verify(tokenB);
    verifier.forgetKey(a.keyId);
    expect(verifier.cached(tokenA)).toBeUndefined();
    expect(verifier.cached(tokenB)?.credential.id).toBe(b.keyId);
  });

  it("hands out a key as the keys file holds it now: refused once removed or expired", () => {
    const { keys, made, verifier } = setup(undefined, {}, { expiresAt: new Date(Date.now() - 1) });
    const [live, expired] = made as [MutableKey, MutableKey];
    expect(verifier.key(live.keyId)).toBe(live);
    let err = (() => { try { verifier.key(expired.keyId); } catch (e) { return e as UnauthenticatedError; } })();
    expect({ reason: err?.reason, why: (err?.cause as Error).message }).toEqual({ reason: "EXPIRED", why: "service-account key expired" });
    keys.delete(live.keyId);
    err = (() => { try { verifier.key(live.keyId); } catch (e) { return e as UnauthenticatedError; } })();
    expect({ reason: err?.reason, why: (err?.cause as Error).message }).toEqual({ reason: "UNAUTHENTICATED", why: "service-account key no longer in the keys file" });
  });

  it("remembers 10,000 tokens by default, then evicts the oldest", async () => {
    const { key, verifier } = setup();
    const claims = claimsOf(key);
    const tokens: string[] = [];
    for (let i = 0; i <= 10_000; i++) tokens.push(await sign(key, { ...claims, sub: `s${i}` }));
    for (const token of tokens.slice(0, 10_000)) await verifier.verify(token);
    expect(verifier.cached(tokens[0]!)?.subject).toBe("s0");
    await verifier.verify(tokens[10_000]!);
    expect(verifier.cached(tokens[0]!)).toBeUndefined();
    expect(verifier.cached(tokens[1]!)?.subject).toBe("s1");
  });
});

describe("mintServiceToken", () => {
  it("signs an HS256 token with the key's kid that the verifier accepts with the roles and subject asked for", async () => {
    const key = saKey("cli-key", { roles: ["admin"], tenant: "initech", tier: "free" });
    const before = nowSec();
    const token = await mintServiceToken(key, { subject: "ops@initech", roles: ["viewer", "worker"], ttl: "5m" });
    expect(decodeProtectedHeader(token)).toEqual({ alg: "HS256", kid: "cli-key", typ: "JWT" });
    const claims = decodeJwt(token);
    expect(claims.iat).toBeGreaterThanOrEqual(before);
    expect(claims.iat).toBeLessThanOrEqual(nowSec());
    expect(claims.exp! - claims.iat!).toBe(300);
    expect(await new TokenVerifier(new Map([[key.keyId, key]])).verify(token)).toEqual({
      subject: "ops@initech",
      tenant: "initech",
      roles: ["viewer", "worker"],
      credential: { kind: "service_account", id: "cli-key" },
      tier: "free",
    });
  });
});
