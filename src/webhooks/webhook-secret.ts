import { randomBytes } from "node:crypto";

/**
 * Signing secrets in the Standard Webhooks form: `whsec_` and the base64 of
 * 32 random bytes, the HMAC-SHA256 key. Unlike an API key's secret, the key
 * itself must be kept: verifying a delivery's signature recomputes the HMAC.
 */
const prefix = "whsec_";

/** A fresh signing key, and the secret a sender configures. */
export function newSigningKey(): { key: Buffer; secret: string } {
  const key = randomBytes(32);
  return { key, secret: secretOf(key) };
}

/** The `whsec_…` secret of a stored key, as the `standardwebhooks` verifier takes it. */
export function secretOf(key: Buffer): string {
  return `${prefix}${key.toString("base64")}`;
}
