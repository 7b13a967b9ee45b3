import { timingSafeEqual } from "node:crypto";
import type { RouteHandler } from "../server/connect-handler.js";
import type { Metrics } from "./metrics.js";

/** Options of createMetricsRoute. */
export interface MetricsRouteOptions {
  readonly metrics: Metrics;
  /** When set, a scrape must send `Authorization: Bearer <token>` (ANVIL_METRICS_TOKEN). */
  readonly token: string | undefined;
}

/**
 * `GET /metrics` in the Prometheus text format. Like the probes it needs no
 * API token — scrapers do not mint JWTs — but it may require a static bearer
 * token of its own, and may be served on a port of its own
 * (ANVIL_METRICS_PORT) that is not exposed with the API.
 */
export function createMetricsRoute(options: MetricsRouteOptions): RouteHandler {
  const expected = options.token === undefined ? undefined : Buffer.from(`Bearer ${options.token}`);
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0];
    if (path !== "/metrics") return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" });
      res.end();
      return true;
    }
    if (expected !== undefined && !sameToken(req.headers.authorization, expected)) {
      res.writeHead(401, { "www-authenticate": 'Bearer realm="metrics"', "content-type": "text/plain", "cache-control": "no-store" });
      res.end("a metrics token is required\n");
      return true;
    }
    options.metrics.text().then(
      (text) => {
        res.writeHead(200, { "content-type": options.metrics.contentType, "cache-control": "no-store" });
        if (req.method === "HEAD") res.end();
        else res.end(text);
      },
      () => {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("metrics could not be collected\n");
      },
    );
    return true;
  };
}

/** Compares in constant time, so the token cannot be guessed byte by byte from response times. */
function sameToken(header: string | undefined, expected: Buffer): boolean {
  if (header === undefined) return false;
  const got = Buffer.from(header);
  return got.length === expected.length && timingSafeEqual(got, expected);
}
