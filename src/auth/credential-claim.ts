import { decodeProtectedHeader } from "jose";
import { parseSecret } from "../apikeys/api-key-secret.js";
import type { CredentialClaim } from "../audit/audit-queue.js";
import { apiKeyPrefix, type HeaderSource } from "./authenticator.js";

/**
 * The credential a request claims to carry, read from its headers without
 * verifying anything: an API key's embedded key id, or a JWT's `kid`. Used
 * only to file a refused call under the tenant the credential names (if
 * that id is known), never to let a call through.
 */
export function claimedCredential(headers: HeaderSource): CredentialClaim | undefined {
  const apiKey = read(headers, "x-api-key")?.trim();
  // Stryker disable next-line StringLiteral: any string the pattern cannot match is equivalent to "".
  const bearer = /^Bearer +(\S+)$/i.exec(read(headers, "authorization")?.trim() ?? "")?.[1];
  const presented = apiKey ?? bearer;
  if (presented === undefined) return undefined;
  if (presented.startsWith(apiKeyPrefix)) {
    const parsed = parseSecret(presented);
    return parsed === undefined ? undefined : { kind: "api_key", id: parsed.keyId };
  }
  try {
    const kid = decodeProtectedHeader(presented).kid;
    return typeof kid === "string" && kid.length <= 200 ? { kind: "service_account", id: kid } : undefined;
  } catch {
    // Not a JWS: it claims nothing (the return below; one in here was an equivalent mutant).
  }
  return undefined;
}

function read(headers: HeaderSource, name: string): string | undefined {
  const value = typeof headers.get === "function" ? (headers as { get(n: string): string | null }).get(name) : (headers as Record<string, string | string[] | undefined>)[name];
  // Stryker disable next-line ConditionalExpression,LogicalOperator,EqualityOperator: a null let through ends as undefined at the callers' ?.trim().
  if (value === null || value === undefined) return undefined;
  return Array.isArray(value) ? value[0] : (value as string);
}
