import type { CallAuthenticator } from "../rpc/call-authenticator.js";
import { toConnectError } from "../rpc/error-mapping.js";
import { rateLimitHeaders } from "../rpc/rate-limit-headers.js";
import { requestIdHeader, requestIdOf } from "../rpc/request-id-interceptor.js";
import type { RouteHandler } from "./connect-handler.js";
import { sendRestError } from "./rest/rest-errors.js";

/**
 * A public route that is no RPC (`/openapi.json`), limited per client
 * address like the public RPCs: refused with 429, RESOURCE_EXHAUSTED's JSON
 * and the RateLimit fields, or served with the RateLimit fields added.
 */
export function limitedPerAddress(route: RouteHandler, path: string, authenticator: CallAuthenticator, compressMinBytes: number): RouteHandler {
  return (req, res) => {
    if ((req.url ?? "").split("?", 1)[0] !== path) return false;
    void authenticator.decidePublic(req.headers, req.socket?.remoteAddress).then(async (outcome) => {
      if (outcome.limit !== undefined) for (const [name, value] of rateLimitHeaders(outcome.limit)) res.setHeader(name, value);
      if (!("refused" in outcome)) {
        route(req, res);
        return;
      }
      const sent = req.headers[requestIdHeader];
      await sendRestError(req, res, toConnectError(outcome.refused, requestIdOf(typeof sent === "string" ? sent : null)), compressMinBytes);
    });
    return true;
  };
}
