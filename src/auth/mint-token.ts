import { SignJWT } from "jose";
import type { ServiceAccountKey } from "./key-store.js";

/** What a minted token says beyond its key's tenant. */
export interface MintOptions {
  readonly subject: string;
  readonly roles: readonly string[];
  /** Lifetime as jose reads it (`1h`, `5m`). */
  readonly ttl: string;
}

/** Signs a service-account token (HS256, `kid` = the key id), as the gateway verifies them. */
export function mintServiceToken(key: ServiceAccountKey, options: MintOptions): Promise<string> {
  return new SignJWT({ tenant: key.tenant, roles: [...options.roles] })
    .setProtectedHeader({ alg: "HS256", kid: key.keyId, typ: "JWT" })
    .setSubject(options.subject)
    .setIssuedAt()
    .setExpirationTime(options.ttl)
    .sign(key.secretBytes);
}
