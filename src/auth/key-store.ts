import { randomBytes, createSecretKey, type KeyObject } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { isTier, type Tier } from "./principal.js";
import { isRole } from "./roles.js";

/** One service-account key from the keys file, its secret imported once. */
export interface ServiceAccountKey {
  readonly keyId: string;
  readonly principal: string;
  readonly tenant: string;
  readonly roles: readonly string[];
  readonly secret: KeyObject;
  /** Raw secret bytes, for signing tokens from the CLI. */
  readonly secretBytes: Uint8Array;
  readonly expiresAt: Date | null;
  /** Rate-limit tier of the key's callers (`tier` in the file; default `unlimited`, keys are internal). */
  readonly tier: Tier;
}

/** Keys by id. */
export type KeyStore = ReadonlyMap<string, ServiceAccountKey>;

interface KeyFileEntry {
  key_id: string;
  principal: string;
  tenant: string;
  roles: string[];
  secret: string;
  expires_at: string | null;
  tier?: string;
}

/**
 * Loads the service-account keys file. When it is missing and `createIfMissing`
 * is set, writes one with a fresh random admin key (mode 0600) so a first
 * `npm start` is usable at once.
 */
export function loadKeyStore(file: string, createIfMissing: boolean): KeyStore {
  if (!existsSync(file)) {
    if (!createIfMissing) {
      throw new Error(`keys file ${file} does not exist; create it (see README, "Service accounts") or leave ANVIL_KEYS_FILE unset to use the default file, created on first start`);
    }
    writeDefaultKeyFile(file);
  }
  let parsed: unknown;
  try {
    // Stryker disable next-line StringLiteral: without an encoding readFileSync gives a Buffer, which JSON.parse reads as its UTF-8 text
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new Error(`keys file ${file} is not valid JSON`, { cause: err });
  }
  const entries = (parsed as { keys?: unknown })?.keys;
  if (!Array.isArray(entries)) throw new Error(`keys file ${file} must be {"keys": [...]}`);
  const store = new Map<string, ServiceAccountKey>();
  for (const [i, raw] of entries.entries()) {
    const key = parseEntry(raw as KeyFileEntry, `${file}: keys[${i}]`);
    if (store.has(key.keyId)) throw new Error(`${file}: duplicate key_id ${key.keyId}`);
    store.set(key.keyId, key);
  }
  return store;
}

function parseEntry(e: KeyFileEntry, where: string): ServiceAccountKey {
  const text = (v: unknown, name: string) => {
    if (typeof v !== "string" || v === "") throw new Error(`${where}: ${name} must be a non-empty string`);
    return v;
  };
  const keyId = text(e.key_id, "key_id");
  const secretBytes = Buffer.from(text(e.secret, "secret"), "base64url");
  if (secretBytes.byteLength < 32) throw new Error(`${where}: secret must be base64url of at least 32 bytes`);
  if (!Array.isArray(e.roles) || !e.roles.every((r) => typeof r === "string" && isRole(r))) {
    throw new Error(`${where}: roles must be a list of known roles`);
  }
  let expiresAt: Date | null = null;
  if (e.expires_at !== null && e.expires_at !== undefined) {
    expiresAt = new Date(text(e.expires_at, "expires_at"));
    if (Number.isNaN(expiresAt.getTime())) throw new Error(`${where}: expires_at must be an ISO date or null`);
  }
  const tier = e.tier ?? "unlimited";
  if (!isTier(tier)) throw new Error(`${where}: tier must be one of free, pro, enterprise, unlimited`);
  return {
    keyId,
    principal: text(e.principal, "principal"),
    tenant: text(e.tenant, "tenant"),
    roles: e.roles,
    secret: createSecretKey(secretBytes),
    secretBytes,
    expiresAt,
    tier,
  };
}

function writeDefaultKeyFile(file: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const entry: KeyFileEntry = {
    key_id: "admin",
    principal: "admin@default",
    tenant: "default",
    roles: ["admin"],
    secret: randomBytes(32).toString("base64url"),
    expires_at: null,
  };
  writeFileSync(file, `${JSON.stringify({ keys: [entry] }, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(file, 0o600);
}
