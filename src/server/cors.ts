import { cors as connectCors } from "@connectrpc/connect";
import type { RouteHandler } from "./connect-handler.js";
import { appendVary } from "./http-compression.js";

/** Options of createCors. */
export interface CorsOptions {
  /** Allowed origins (`https://app.example.com`), or `*` for any; empty turns CORS off. */
  readonly origins: readonly string[];
  /** HTTP methods of the REST routes, allowed in addition to Connect's GET and POST. */
  readonly restMethods: readonly string[];
}

/**
 * Request headers a browser may send: what Connect and gRPC-Web need (the
 * list connect-es publishes as `cors.allowedHeaders`), plus the three Anvil
 * itself reads from browsers — the bearer token, the correlation id, and
 * `Last-Event-ID`, which EventSource sends when it reconnects to an event
 * stream (not a safelisted header, so it needs a preflight cross-origin).
 */
export const corsAllowedHeaders: readonly string[] = [...connectCors.allowedHeaders, "Authorization", "X-Request-Id", "Last-Event-ID"];

/**
 * Response headers a script may read: gRPC-Web's status trailers-in-headers
 * and Connect's encodings (connect-es `cors.exposedHeaders`), plus the
 * correlation id, which clients quote in bug reports.
 */
export const corsExposedHeaders: readonly string[] = [...connectCors.exposedHeaders, "X-Request-Id"];

/**
 * Cross-origin access for browsers, first in the route list. A preflight
 * (OPTIONS with Origin and Access-Control-Request-Method) is answered here,
 * before and without authentication, since browsers never send tokens on
 * preflights: 204 with the allowed methods and headers for a configured
 * origin, 403 with no CORS headers for any other. On an actual request from
 * a configured origin it adds Access-Control-Allow-Origin and the exposed
 * headers, then lets the next route answer. Requests from other origins get
 * no CORS headers, so the browser withholds the response from the script.
 * No `Allow-Credentials`: Anvil authenticates by header, never by cookie.
 */
export function createCors(options: CorsOptions): RouteHandler {
  const any = options.origins.includes("*");
  const origins = new Set(options.origins);
  const methods = [...new Set([...connectCors.allowedMethods, ...options.restMethods])].join(", ");
  const allowedHeaders = corsAllowedHeaders.join(", ");
  const exposedHeaders = corsExposedHeaders.join(", ");
  return (req, res) => {
    if (origins.size === 0) return false;
    const origin = req.headers.origin;
    if (origin === undefined) return false;
    const allowed = any || origins.has(origin);
    // The answer differs per Origin unless every origin gets the same `*`.
    if (!any) appendVary(res, "Origin");
    const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
    if (!allowed) {
      if (!preflight) return false;
      res.writeHead(403, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: "permission_denied", message: `origin ${origin} is not allowed`, details: [] }));
      return true;
    }
    res.setHeader("access-control-allow-origin", any ? "*" : origin);
    if (!preflight) {
      res.setHeader("access-control-expose-headers", exposedHeaders);
      return false;
    }
    appendVary(res, "Access-Control-Request-Method", "Access-Control-Request-Headers");
    res.writeHead(204, {
      "access-control-allow-methods": methods,
      "access-control-allow-headers": allowedHeaders,
      // Two hours, the most Chromium honours: fewer preflights per call.
      "access-control-max-age": "7200",
    });
    res.end();
    return true;
  };
}
