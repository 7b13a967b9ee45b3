import type { NodeResponse, RouteHandler } from "./connect-handler.js";
import { appendVary } from "./http-compression.js";

/**
 * Caching headers for GET responses of Anvil's API (Connect GET and REST GET).
 *
 * Every such response depends on the caller's token, so no shared cache
 * (CDN, proxy) may keep it: `private`. The data is mutable and Anvil gives
 * no freshness lifetime, so a browser that keeps a copy must revalidate it
 * before every reuse: `no-cache` — unlike `no-store`, this still lets a
 * client opt into reuse with a conditional request later without a breaking
 * change. `Vary` names every request header the representation depends on:
 * the token (Authorization), the coding (Accept-Encoding) and, for CORS, the
 * Origin, so a cached copy is never served to a different caller or origin.
 */
export function setPrivateCaching(res: NodeResponse): void {
  res.setHeader("cache-control", "private, no-cache");
  appendVary(res, "Authorization", "Accept-Encoding", "Origin");
}

/**
 * Wraps the Connect route so its GET responses (NO_SIDE_EFFECTS methods
 * called with the Connect GET protocol) carry setPrivateCaching's headers.
 * The headers are set ahead of the handler, which writes them with its own;
 * if the route declines the request they are taken back off.
 */
export function withPrivateGetCaching(route: RouteHandler): RouteHandler {
  return (req, res) => {
    if (req.method !== "GET") return route(req, res);
    const before = res.getHeader("vary");
    setPrivateCaching(res);
    if (route(req, res)) return true;
    res.removeHeader("cache-control");
    if (before === undefined) res.removeHeader("vary");
    else res.setHeader("vary", before);
    return false;
  };
}
