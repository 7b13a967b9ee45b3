import type { OutgoingHttpHeaders } from "node:http";
import type { NodeResponse } from "../connect-handler.js";

/** Node's header object from Fetch Headers (set-cookie kept as a list). */
export function nodeHeaders(headers: Headers): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  headers.forEach((value, key) => {
    out[key] = value;
  });
  const cookies = headers.getSetCookie();
  if (cookies.length > 0) out["set-cookie"] = cookies;
  return out;
}

/**
 * Writes a whole response — status, headers, body and, for HTTP/2, trailers
 * — the way connect-node's adapter does, in one go.
 */
export function writeResponse(res: NodeResponse, status: number, header: Headers, body: Uint8Array | undefined, trailer?: Headers): void {
  if (res.destroyed || res.writableEnded) return;
  const r = res as import("node:http").ServerResponse;
  r.writeHead(status, nodeHeaders(header));
  if (trailer !== undefined) {
    if (body !== undefined && body.byteLength > 0) r.write(body);
    r.addTrailers(nodeHeaders(trailer));
    r.end();
    return;
  }
  r.end(body);
}
