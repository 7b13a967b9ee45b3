import http from "node:http";
import type { Duplex } from "node:stream";
import type { NodeRequest, NodeResponse } from "./connect-handler.js";
import { closeInStagesWhileSending } from "./staged-close.js";

/**
 * The HTTP/1.1 connections of a listener and the requests in flight on each,
 * so a drain can close every keep-alive connection without cutting a call:
 * the next response on every connection says `Connection: close` (Node then
 * closes the connection after it), and a connection that stays idle for
 * `idleGraceMs` is closed without one.
 *
 * The grace matters: a keep-alive client sends its next request the moment
 * it has its last response, so closing an idle connection at once resets
 * requests already on their way. Waiting a moment lets them in, to be
 * answered in full with `Connection: close`.
 *
 * Node's own closeIdleConnections() cannot be relied on here: the cleartext
 * HTTP/1.1 server never listens (the protocol sniffer hands it its sockets)
 * and, over TLS, HTTP/1.1 runs inside the HTTP/2 server.
 *
 * A connection that closes after a response while its request is still
 * arriving (a body refused part-way, with `Connection: close` or during a
 * drain) closes in stages, so the client gets that response and not a reset.
 */
export class Http1Connections {
  /** Each connection with its responses not yet finished (pipelined requests wait in Node's queue). */
  readonly #open = new Map<Duplex, Set<http.ServerResponse>>();
  /** Each connection's latest request: the one whose body may still be arriving. */
  readonly #latest = new WeakMap<Duplex, NodeRequest>();
  readonly #idleGraceMs: number;
  #closing = false;

  constructor(idleGraceMs = 500) {
    this.#idleGraceMs = idleGraceMs;
  }

  /** A connection now speaks HTTP/1.1 (before its first request). */
  add(socket: Duplex): void {
    if (this.#open.has(socket)) return;
    this.#open.set(socket, new Set());
    socket.once("close", () => this.#open.delete(socket));
    closeInStagesWhileSending(socket, () => this.#latest.get(socket)?.complete === false);
    if (this.#closing) this.#closeIfIdle(socket);
  }

  /** A request arrived; call before handling it. Ignores HTTP/2 requests. */
  request(req: NodeRequest, res: NodeResponse): void {
    if (!(res instanceof http.ServerResponse)) return;
    const socket = req.socket;
    this.add(socket);
    const responses = this.#open.get(socket);
    if (responses === undefined) return;
    responses.add(res);
    this.#latest.set(socket, req);
    // Node sends `Connection: close` and closes the socket after this response.
    if (this.#closing) res.shouldKeepAlive = false;
    res.once("close", () => {
      responses.delete(res);
      // A response that went out before the drain began kept the connection alive.
      if (this.#closing && res.shouldKeepAlive) this.#closeIfIdle(socket);
    });
  }

  /** Stops keep-alive: every next response says `Connection: close`; idle connections close after the grace. */
  close(): void {
    this.#closing = true;
    for (const [socket, responses] of this.#open) {
      for (const res of responses) if (!res.headersSent) res.shouldKeepAlive = false;
      this.#closeIfIdle(socket);
    }
  }

  /** The connection stopped speaking HTTP/1.1 (it was upgraded to a WebSocket): a drain leaves it alone. */
  forget(socket: Duplex): void {
    this.#open.delete(socket);
  }

  /** Connections still open. */
  get size(): number {
    return this.#open.size;
  }

  #closeIfIdle(socket: Duplex): void {
    setTimeout(() => {
      if (this.#open.get(socket)?.size === 0) closeWhenFlushed(socket);
    }, this.#idleGraceMs).unref();
  }
}

/**
 * Destroys the socket once what was written to it has left: destroy(), not
 * end(), so a request the client sends meanwhile is refused by the kernel
 * (a connection reset, before any of it is read) instead of being read by a
 * half-closed socket that could not answer it.
 */
function closeWhenFlushed(socket: Duplex): void {
  if (socket.destroyed) return;
  if (socket.writableLength === 0) socket.destroy();
  else socket.once("drain", () => socket.destroy());
}
