import type http from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { closeInStages } from "./staged-close.js";

/**
 * Answers requests Node's HTTP/1.1 parser refuses (headers over
 * maxHeaderSize, a malformed request line or header) with a lingering
 * close. Node's own answer writes the status and destroys the socket at
 * once: when the client is still sending a body, the unread bytes make the
 * kernel send a reset, which discards the answer, so the client sees
 * ECONNRESET instead of 431 or 400 and cannot tell a refusal from a crash.
 * Here the answer is written and the connection closed in stages
 * (staged-close.ts).
 *
 * Timeouts keep Node's immediate close: a client that sends too slowly gains
 * nothing by being waited for. Each refusal is logged (at info) on `log`.
 */
export function closeRefusedConnectionsGracefully(server: http.Server, log?: Logger): void {
  const refused = new WeakSet<Duplex>();
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    // The parser reports again for each chunk that arrives after its error.
    if (refused.has(socket)) return;
    refused.add(socket);
    const peer = socket as Partial<Pick<Socket, "remoteAddress" | "remotePort">>;
    // The code and message only: the parser's error holds the raw bytes it choked on.
    log?.info({ err: { code: err.code, message: err.message }, peer: peer.remoteAddress && `${peer.remoteAddress}:${peer.remotePort}` }, "connection ended by an error");
    const response = answerFor(err.code);
    if (response === undefined || !socket.writable || answerStarted(socket)) {
      socket.destroy();
      return;
    }
    if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      socket.write(response);
      socket.destroy();
      return;
    }
    closeInStages(socket, response);
  });
}

/** Node's answer for each parser error; undefined for errors after which nothing can be written (the client went away). */
function answerFor(code: string | undefined): string | undefined {
  switch (code) {
    case "ECONNRESET":
    case "EPIPE":
      return undefined;
    case "HPE_HEADER_OVERFLOW":
      return response(431, "Request Header Fields Too Large");
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return response(413, "Payload Too Large");
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return response(408, "Request Timeout");
    default:
      return response(400, "Bad Request");
  }
}

function response(status: number, reason: string): string {
  return `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`;
}

/** Whether a response on this socket has started, so an error status can no longer be written (Node's own rule). */
function answerStarted(socket: Duplex): boolean {
  return (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
}
