import { ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import type { LimitResult } from "../limits/rate-limiter.js";

/** The rate limit that applied to the call (set by the auth interceptor), for the response headers. */
export const appliedLimitKey = createContextKey<LimitResult | undefined>(undefined, { description: "rate limit applied" });

/**
 * The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers-08 and
 * later, structured-field form) describing the limit that applied, plus
 * `Retry-After` when it refused the call:
 *
 *   RateLimit-Policy: "free";q=20;w=120   the bucket holds q calls and refills
 *                                         completely in w seconds (q/w = the rate)
 *   RateLimit: "free";r=0;t=6             r calls left now; t seconds until the
 *                                         next call is allowed when r=0, else
 *                                         until the bucket is full again
 *
 * Seconds are rounded up, so a client that waits t (or Retry-After) is not
 * refused for having come a fraction of a second early.
 */
export function rateLimitHeaders(limit: LimitResult): [string, string][] {
  const { policy, answer } = limit;
  const name = `"${policy.name}"`;
  const window = Math.ceil((policy.burst / policy.ratePerMinute) * 60);
  const t = Math.ceil((answer.remaining === 0 && answer.retryAfterMs > 0 ? answer.retryAfterMs : answer.fullInMs) / 1000);
  const out: [string, string][] = [
    ["ratelimit-policy", `${name};q=${policy.burst};w=${window}`],
    ["ratelimit", `${name};r=${answer.remaining};t=${t}`],
  ];
  if (!answer.allowed) out.push(["retry-after", String(Math.max(1, Math.ceil(answer.retryAfterMs / 1000)))]);
  return out;
}

/** Sets the RateLimit fields of `limit` (if any) on `headers`. */
export function setRateLimitHeaders(headers: Headers, limit: LimitResult | undefined): void {
  if (limit === undefined) return;
  for (const [name, value] of rateLimitHeaders(limit)) headers.set(name, value);
}

/**
 * Puts the RateLimit fields of the limit that applied on every answer: the
 * response headers of a call that proceeds, the error's metadata (headers,
 * or gRPC trailers) of one that fails or is refused. It runs outside the
 * error interceptor, so every error it sees is already a ConnectError.
 */
export function rateLimitHeadersInterceptor(): Interceptor {
  return (next) => async (req) => {
    let res;
    try {
      res = await next(req);
    } catch (err) {
      if (err instanceof ConnectError) setRateLimitHeaders(err.metadata, req.contextValues.get(appliedLimitKey));
      throw err;
    }
    setRateLimitHeaders(res.header, req.contextValues.get(appliedLimitKey));
    return res;
  };
}
