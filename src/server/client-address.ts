import type { NodeRequest } from "./connect-handler.js";

/**
 * The socket's peer: the client address a call starts with. Once the call
 * is authenticated, CallAuthenticator's resolution (src/rpc/client-address.ts:
 * behind a trusted proxy, the nearest untrusted `X-Forwarded-For` hop)
 * replaces it, and refusals are recorded with that resolved address.
 */
export function clientAddress(req: NodeRequest): string {
  return req.socket?.remoteAddress ?? "";
}
