import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { apiKeyPrefix } from "../auth/authenticator.js";

/**
 * API key secrets: `anvil_<key id, 32 hex>_<32 random bytes, base64url>`.
 * The prefix lets secret scanners and people recognise a key; the embedded
 * id finds its record in one lookup; the 256 random bits make it
 * unguessable. Only the SHA-256 of the whole secret is stored — a fast hash
 * is enough for a high-entropy secret (nothing to brute-force), and it keeps
 * verification as cheap as an HMAC.
 */
export interface ParsedSecret {
  readonly keyId: string;
  readonly hash: Buffer;
}

const shape = /^anvil_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;

/** A fresh secret for the key `keyId` (a UUID), and its hash to store. */
export function newSecret(keyId: string): { secret: string; hash: Buffer } {
  const secret = `${apiKeyPrefix}${keyId.replaceAll("-", "")}_${randomBytes(32).toString("base64url")}`;
  return { secret, hash: hashOf(secret) };
}

/** The key id and hash of a presented secret, or undefined if it is not shaped like one. */
export function parseSecret(secret: string): ParsedSecret | undefined {
  const match = shape.exec(secret);
  if (!match) return undefined;
  const hex = match[1] as string;
  const keyId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  return { keyId, hash: hashOf(secret) };
}

/** Whether two hashes are equal, in time independent of where they differ. */
export function sameHash(a: Buffer, b: Buffer): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

function hashOf(secret: string): Buffer {
  return createHash("sha256").update(secret).digest();
}
