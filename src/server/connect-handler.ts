import { type ConnectRouter, type ConnectRouterOptions, createConnectRouter } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Logger } from "pino";
import { reclassifyBinaryParseErrors } from "./binary-parse-errors.js";

export type NodeRequest = IncomingMessage | Http2ServerRequest;
export type NodeResponse = ServerResponse | Http2ServerResponse;

/** Answers a request if its path is an RPC; returns false to let the next route try. */
export type RouteHandler = (req: NodeRequest, res: NodeResponse) => boolean;

/** Options of createConnectHandler. */
export interface ConnectHandlerOptions extends ConnectRouterOptions {
  readonly routes: (router: ConnectRouter) => void;
  readonly log: Logger;
}

/**
 * Serves every registered service over gRPC, gRPC-Web and Connect. This is
 * connect-node's `connectNodeAdapter` with two changes: a path that is not
 * an RPC falls through to Anvil's other routes (REST, health), and binary
 * parse errors are reported as INVALID_ARGUMENT (see binary-parse-errors.ts).
 */
export function createConnectHandler(options: ConnectHandlerOptions): { handle: RouteHandler; handlers: readonly UniversalHandler[] } {
  const router = createConnectRouter({
    acceptCompression: [compressionGzip, compressionBrotli],
    ...options,
  });
  options.routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set(h.requestPath, h);
  const handle: RouteHandler = (req, res) => {
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const handler = paths.get(q === -1 ? url : url.slice(0, q));
    if (!handler) return false;
    const uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
    handler(uReq)
      .then(reclassifyBinaryParseErrors)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((err: unknown) => {
        // The client went away mid-response; nothing is left to tell it.
        options.log.debug({ err, rpc: handler.requestPath }, "response not completed");
      });
    return true;
  };
  return { handle, handlers: router.handlers };
}
