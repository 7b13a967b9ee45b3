import { randomBytes } from "node:crypto";
import { SignJWT } from "jose";

/** A service-account key as written to the keys file. */
export interface TestKey {
  key_id: string;
  principal: string;
  tenant: string;
  roles: string[];
  secret: string;
  expires_at: string | null;
  /** Rate-limit tier; test keys are `unlimited`, so no suite is throttled by its own helpers. */
  tier?: string;
}

function key(key_id: string, tenant: string, roles: string[], expires_at: string | null = null): TestKey {
  return { key_id, principal: `${key_id}@${tenant}`, tenant, roles, secret: randomBytes(32).toString("base64url"), expires_at, tier: "unlimited" };
}

/** Keys every test server trusts: two tenants, each role, and an expired key. */
export function testKeys(): TestKey[] {
  return [
    key("acme-admin", "acme", ["admin"]),
    key("acme-editor", "acme", ["editor"]),
    key("acme-viewer", "acme", ["viewer"]),
    key("acme-analyzer", "acme", ["analyzer"]),
    key("acme-worker", "acme", ["worker"]),
    key("globex-admin", "globex", ["admin"]),
    key("acme-expired", "acme", ["admin"], "2020-01-01T00:00:00Z"),
  ];
}

/** Options for minting a token; anything not given follows the key. */
export interface MintOptions {
  sub?: string;
  roles?: string[];
  tenant?: string;
  /** Seconds from now; negative for an expired token. */
  ttl?: number;
  /** Seconds from now for `nbf`. */
  notBefore?: number;
  alg?: string;
  kid?: string;
  /** Sign with these bytes instead of the key's secret. */
  secret?: Uint8Array;
}

/** Signs an HS256 token with a test key, as `npm run token` does. */
export async function mintToken(k: TestKey, options: MintOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ tenant: options.tenant ?? k.tenant, roles: options.roles ?? k.roles })
    .setProtectedHeader({ alg: options.alg ?? "HS256", kid: options.kid ?? k.key_id })
    .setSubject(options.sub ?? "tester")
    .setIssuedAt(now)
    .setExpirationTime(now + (options.ttl ?? 3600));
  if (options.notBefore !== undefined) jwt.setNotBefore(now + options.notBefore);
  return jwt.sign(options.secret ?? Buffer.from(k.secret, "base64url"));
}

/** An unsigned `alg: none` token with otherwise valid claims. */
export function unsignedToken(k: TestKey): string {
  const now = Math.floor(Date.now() / 1000);
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${enc({ alg: "none", kid: k.key_id })}.${enc({ sub: "x", tenant: k.tenant, roles: k.roles, iat: now, exp: now + 60 })}.`;
}

/**
 * Configuration every test gateway starts with: every test calls from
 * 127.0.0.1, so the per-address limit of callers without a valid
 * credential (and of public endpoints) is raised far beyond any suite's
 * bad-token calls. Tests of that limit set their own.
 */
export const testLimitEnv: Readonly<Record<string, string>> = {
  ANVIL_RATE_LIMIT_IP: JSON.stringify({ burst: 1_000_000, ratePerMinute: 1_000_000 }),
};
