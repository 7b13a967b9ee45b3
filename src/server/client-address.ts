import type { NodeRequest } from "./connect-handler.js";

/**
 * The address of the client that made `req`, as audit events and limits
 * name it: for now the socket's peer. The one place that decides it — when
 * trusted proxies are configured, this is where the nearest untrusted
 * `X-Forwarded-For` hop replaces the peer.
 */
export function clientAddress(req: NodeRequest): string {
  return req.socket?.remoteAddress ?? "";
}
