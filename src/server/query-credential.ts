import type { IncomingHttpHeaders } from "node:http";
import { UnauthenticatedError } from "../shared/errors.js";

/**
 * Query parameters that may carry a credential, and the header each stands
 * for: `access_token` a bearer token (a JWT or an API key), `api_key` an
 * API key as `x-api-key` carries it.
 */
const standsFor = { access_token: "authorization", api_key: "x-api-key" } as const;

/** A query parameter that may carry a credential. */
export type CredentialParameter = keyof typeof standsFor;

/** A request's query with its credential taken out. */
export interface QueryCredential {
  /** The query without the credential parameters. */
  readonly query: URLSearchParams;
  /** The request's headers, plus the credential from the query as the header it stands for. */
  readonly headers: IncomingHttpHeaders;
  /** The request URL with every credential value replaced by `REDACTED`: what logs and interceptors see. */
  readonly redactedUrl: string;
}

/**
 * Takes the credential out of a request's query string, for the streaming
 * routes (and only those) whose browser clients cannot send headers:
 * `EventSource` and `WebSocket`. The credential then authenticates exactly
 * as its header would. A credential sent twice (twice in the query, or in
 * the query and a header) is refused: two credentials could name two
 * callers.
 *
 * @example
 *   takeQueryCredential("/v1/operations/1:watch?access_token=abc", {}, ["access_token"])
 *   → headers.authorization = "Bearer abc", redactedUrl "/v1/operations/1:watch?access_token=REDACTED"
 */
export function takeQueryCredential(url: string, headers: IncomingHttpHeaders, accepted: readonly CredentialParameter[]): QueryCredential {
  const q = url.indexOf("?");
  const query = new URLSearchParams(q === -1 ? "" : url.slice(q + 1));
  const found = accepted.filter((name) => query.has(name));
  if (found.length === 0) return { query, headers, redactedUrl: url };
  const redacted = new URLSearchParams(query);
  for (const name of found) redacted.set(name, "REDACTED");
  const redactedUrl = `${url.slice(0, q)}?${redacted.toString()}`;
  const values = found.flatMap((name) => query.getAll(name));
  if (values.length > 1 || headers.authorization !== undefined || headers["x-api-key"] !== undefined) {
    throw new UnauthenticatedError("more than one credential sent (query and header, or the query twice)");
  }
  const name = found[0]!;
  for (const n of found) query.delete(n);
  const value = values[0]!;
  return {
    query,
    headers: { ...headers, [standsFor[name]]: name === "access_token" ? `Bearer ${value}` : value },
    redactedUrl,
  };
}

/** `url` with the values of every credential parameter replaced by `REDACTED` (for log lines about a request). */
export function redactQueryCredentials(url: string): string {
  const q = url.indexOf("?");
  if (q === -1) return url;
  const query = new URLSearchParams(url.slice(q + 1));
  let changed = false;
  for (const name of Object.keys(standsFor)) {
    if (query.has(name)) {
      query.set(name, "REDACTED");
      changed = true;
    }
  }
  return changed ? `${url.slice(0, q)}?${query.toString()}` : url;
}
