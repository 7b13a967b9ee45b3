// Edges of src/auth that survived the first mutation run over the direct
// tests (test/token-verifier, key-store and oidc-verifier.test.ts), in a file
// of their own: `npm run mutate` retests every mutant a changed test file
// killed, so extending those files would have rerun the whole group.
import { createSecretKey, randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importJWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadKeyStore, type ServiceAccountKey } from "../src/auth/key-store.js";
import { type OidcOptions, OidcVerifier } from "../src/auth/oidc-verifier.js";
import { ServiceAccountKeys } from "../src/auth/service-account-keys.js";
import { TokenVerifier } from "../src/auth/token-verifier.js";
import { PermissionDeniedError, UnauthenticatedError, UnavailableError } from "../src/shared/errors.js";
import { startIdentityProvider, type TestIdentityProvider } from "./support/identity-provider.js";
import { captureLog } from "./support/log-capture.js";

const dir = mkdtempSync(join(tmpdir(), "anvil-auth-edges-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const secret = () => randomBytes(32).toString("base64url");
const entry = (fields: Record<string, unknown> = {}) => ({ key_id: "ci", principal: "ci@acme", tenant: "acme", roles: ["editor"], secret: secret(), expires_at: null, ...fields });
function keysFile(keys: unknown, path = join(dir, `keys-${++files}.json`)): string {
  writeFileSync(path, typeof keys === "string" ? keys : JSON.stringify({ keys }));
  return path;
}
const nowSec = () => Math.floor(Date.now() / 1000);

describe("the keys file", () => {
  it("keeps the parser's error as the cause of 'not valid JSON'", () => {
    const file = keysFile("{not json");
    expect(() => loadKeyStore(file, false)).toThrow(expect.objectContaining({ message: `keys file ${file} is not valid JSON`, cause: expect.any(SyntaxError) }));
  });

  it("refuses a role nested in a list, though its text names a role", () => {
    expect(() => loadKeyStore(keysFile([entry({ roles: [["admin"]] })]), false)).toThrow("roles must be a list of known roles");
  });

  /** Keys over a file of their own, a log kept, and every change reported. */
  function watched(keys: unknown[]) {
    const file = keysFile(keys);
    const { log, lines } = captureLog("info");
    const accounts = new ServiceAccountKeys(file, false, log);
    const changes: string[][] = [];
    accounts.onChange((ids) => changes.push([...ids]));
    return { file, accounts, changes, reloads: () => lines.filter((l) => l.includes('"keys file reloaded"')).length };
  }

  it("keeps its keys when the file is gone, and does not write a new one", () => {
    const { file, accounts, changes } = watched([entry()]);
    rmSync(file);
    expect(accounts.reload()).toBe(false);
    expect(accounts.get("ci")?.keyId).toBe("ci");
    expect(changes).toEqual([]);
    expect(existsSync(file)).toBe(false);
  });

  it("keeps an unchanged key of several roles as it was", () => {
    const key = entry({ roles: ["editor", "worker"] });
    const { file, accounts, changes } = watched([key]);
    const before = accounts.get("ci");
    keysFile([key], file);
    expect(accounts.reload()).toBe(true);
    expect(accounts.get("ci")).toBe(before);
    expect(changes).toEqual([]);
  });

  /** Resolves once the watcher polls (a change made before its first look is its baseline): touches the file until a reload is logged, for up to 3 s. */
  async function polling(file: string, reloads: () => number): Promise<void> {
    const before = reloads();
    for (let i = 1; reloads() === before; i++) {
      if (i > 60) throw new Error("the watcher never polled within 3 s");
      utimesSync(file, new Date(), new Date(Date.now() + i * 1_000));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  /** The ids of the next change reported; rejects after 3 s (the file is polled every 20 ms here; node's own default is every 5 s). */
  const nextChange = (accounts: ServiceAccountKeys) =>
    new Promise<readonly string[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no reload within 3 s")), 3_000);
      accounts.onChange((ids) => {
        clearTimeout(timer);
        resolve(ids);
      });
    });

  it("polls at the interval it is given, and on close stops its own reloads only, not another instance's of the same file", async () => {
    const shared = watched([entry({ key_id: "a" })]);
    shared.accounts.watch(20);
    const closed = new ServiceAccountKeys(shared.file, false, captureLog().log);
    const closedChanges: string[][] = [];
    closed.onChange((ids) => closedChanges.push([...ids]));
    closed.watch(20);
    closed.close();
    // Never watched: its close ends nothing either.
    new ServiceAccountKeys(shared.file, false, captureLog().log).close();
    try {
      await polling(shared.file, shared.reloads);
      const change = nextChange(shared.accounts);
      keysFile([entry({ key_id: "b" })], shared.file);
      utimesSync(shared.file, new Date(), new Date(Date.now() + 100_000));
      expect(await change).toEqual(["a"]);
      // Both would have been told in the same poll: the closed one was not.
      expect(closedChanges).toEqual([]);
    } finally {
      shared.accounts.close();
    }
  });
});

describe("TokenVerifier", () => {
  it("says why it refuses roles beyond the key's grant", async () => {
    const secretBytes = randomBytes(32);
    const key: ServiceAccountKey = { keyId: "k", principal: "k@acme", tenant: "acme", roles: ["viewer"], secret: createSecretKey(secretBytes), secretBytes, expiresAt: null, tier: "free" };
    const token = await new SignJWT({ tenant: "acme", roles: ["editor"] }).setProtectedHeader({ alg: "HS256", kid: "k" }).setSubject("s").setIssuedAt().setExpirationTime("5m").sign(secretBytes);
    const err = await new TokenVerifier(new Map([["k", key]])).verify(token).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermissionDeniedError);
    expect((err as Error).message).toBe("token claims roles its key does not grant");
  });
});

describe("OidcVerifier against a real OpenID provider", () => {
  const audience = "https://anvil.test";
  let idp: TestIdentityProvider;
  beforeAll(async () => {
    idp = await startIdentityProvider(audience, [{ id: "ci", secret: "s3cret-s3cret", claims: { tenant: "acme", roles: ["editor"] } }]);
  });
  afterAll(() => idp?.close());
  const options = (extra: Partial<OidcOptions> = {}): OidcOptions => ({
    issuer: idp.issuer,
    audience,
    tenantClaim: "tenant",
    rolesClaim: "roles",
    fixedTenant: undefined,
    jwksCooldownMs: 0,
    tier: "free",
    ...extra,
  });
  /** A token with exactly `claims`, signed by the provider's published key. */
  const signed = async (claims: Record<string, unknown>) => {
    const jwk = idp.signingKey();
    return new SignJWT({ iss: idp.issuer, aud: audience, sub: `u-${randomUUID()}`, tenant: "acme", iat: nowSec(), exp: nowSec() + 300, ...claims })
      .setProtectedHeader({ alg: "RS256", kid: jwk.kid! })
      .sign(await importJWK(jwk, "RS256"));
  };

  it("drops a list nested in the roles claim, though its text names a role", async () => {
    expect((await new OidcVerifier(options()).verify(await signed({ roles: [["admin"], "viewer"] }))).roles).toEqual(["viewer"]);
  });

  it("reads claim paths into objects and lists, never into the characters of a string", async () => {
    const v = new OidcVerifier(options({ tenantClaim: "org.0" }));
    expect((await v.verify(await signed({ org: ["globex"] }))).tenant).toBe("globex");
    const err = await v.verify(await signed({ org: "globex" })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(((err as Error).cause as Error).message).toBe("OIDC token has no org.0 claim");
  });

  /** A loopback port nothing listens on. */
  async function closedPort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  it("tells the caller to retry later when the provider cannot be discovered, or its key set fetched", async () => {
    const undiscoverable = new OidcVerifier(options({ issuer: `http://127.0.0.1:${await closedPort()}` }));
    const discovery = await undiscoverable.verify(await signed({})).catch((e: unknown) => e);
    expect(discovery).toBeInstanceOf(UnavailableError);
    expect((discovery as Error).message).toBe("identity provider unreachable, retry later");

    // Discovered and its keys fetched; then the provider goes away and a new kid sends the verifier to fetch them again.
    const own = await startIdentityProvider(audience, []);
    const v = new OidcVerifier(options({ issuer: own.issuer }));
    const jwk = own.signingKey();
    const sign = async (kid: string) =>
      new SignJWT({ iss: own.issuer, aud: audience, sub: "s", tenant: "acme", iat: nowSec(), exp: nowSec() + 300 }).setProtectedHeader({ alg: "RS256", kid }).sign(await importJWK(jwk, "RS256"));
    expect((await v.verify(await sign(jwk.kid!))).tenant).toBe("acme");
    await own.close();
    const keySet = await v.verify(await sign("unknown-kid")).catch((e: unknown) => e);
    expect(keySet).toBeInstanceOf(UnavailableError);
    expect((keySet as Error).message).toBe("identity provider unreachable, retry later");
  });
});
