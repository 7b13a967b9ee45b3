import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { ConnectionLimits } from "../config.js";
import { BodyDeadlines } from "./body-deadlines.js";
import type { NodeRequest, NodeResponse } from "./connect-handler.js";
import { closeRefusedConnectionsGracefully } from "./client-errors.js";
import { Http1Connections } from "./http1-connections.js";
import { boundHttp2Sessions } from "./http2-limits.js";

/** Options of listen(). */
export interface ListenOptions {
  readonly port: number;
  readonly host: string;
  /** PEM files; when both are set the port speaks TLS (ALPN h2 and http/1.1). */
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
  /** How long each phase of a connection may take. */
  readonly connectionLimits: ConnectionLimits;
  /** Where connections that end in an error are logged (at info: a client's reset is routine, but never silent). */
  readonly log?: Logger;
}

/** A listening server. */
export interface Listening {
  readonly port: number;
  /**
   * Stops accepting, closes idle connections at once (HTTP/1.1 keep-alive
   * sockets between requests; HTTP/2 sessions get GOAWAY), answers the
   * request in flight on every other HTTP/1.1 connection with `Connection:
   * close`, lets in-flight requests finish for up to `graceMs`, then cuts the
   * rest. Resolves once every connection is gone.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * Takes an HTTP/1.1 upgrade request (a WebSocket handshake) with its socket
 * and the bytes read past its headers; returns false when the request is
 * not its to take.
 */
export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => boolean;

// Every HTTP/2 connection with prior knowledge opens with this preface.
const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Serves `handle` on one port for every client: HTTP/1.1 (Connect, gRPC-Web,
 * REST, browsers) and HTTP/2 — over TLS chosen by ALPN, or in cleartext with
 * prior knowledge as `grpcurl -plaintext` and `buf curl
 * --http2-prior-knowledge` speak it. Cleartext connections are told apart by
 * their first bytes: only HTTP/2 starts with the connection preface.
 *
 * Every phase of a connection is bounded by `connectionLimits`: the sniff
 * (or TLS handshake), HTTP/1.1 headers, the whole request (or, for a body a
 * route streams, the time between two of its pieces: BodyDeadlines), idle
 * keep-alive and idle HTTP/2 sessions.
 */
export function listen(handle: (req: NodeRequest, res: NodeResponse) => void, options: ListenOptions, upgrade?: UpgradeHandler): Promise<Listening> {
  const limits = options.connectionLimits;
  const log = options.log;
  const sockets = new Set<Duplex>();
  const sniffing = new Set<net.Socket>();
  // During a drain every HTTP/1.1 response says `Connection: close`, so a
  // keep-alive client does not send its next request to a closing server.
  const http1 = new Http1Connections();
  const bodies = new BodyDeadlines(limits);
  let server: net.Server;
  let h2: http2.Http2Server | http2.Http2SecureServer;
  let h1: http.Server | undefined;
  // The server that answers HTTP/1.1 client errors (the cleartext one, or the TLS server running HTTP/1.1 itself).
  let h1Errors: http.Server;
  const serve = (req: NodeRequest, res: NodeResponse) => {
    http1.request(req, res);
    if (res instanceof http.ServerResponse && !(req as http.IncomingMessage).complete) {
      const request = req as http.IncomingMessage;
      // Cut as Node's own requestTimeout cuts: 408 (when no answer has started) and the connection closed.
      bodies.track(request, () => request.complete || request.socket.destroyed, () => h1Errors.emit("clientError", requestTimeout(), request.socket));
    }
    handle(req, res);
  };
  const h2Options = { settings: { maxConcurrentStreams: 1000 }, maxSessionMemory: 64 };
  const h1Timeouts = {
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    // Request bodies are bounded by BodyDeadlines instead: Node's timer cannot spare a streamed body.
    requestTimeout: 0,
    connectionsCheckingInterval: checkingInterval(limits),
  };
  if (options.tlsCert && options.tlsKey) {
    const secure = http2.createSecureServer(
      {
        ...h2Options,
        cert: readFileSync(options.tlsCert),
        key: readFileSync(options.tlsKey),
        allowHTTP1: true,
        ALPNProtocols: ["h2", "http/1.1"],
        handshakeTimeout: limits.sniffTimeoutMs,
      },
      serve,
    );
    // With allowHTTP1 the secure server runs Node's HTTP/1.1 connection
    // handling itself and arms these timers when it listens; it only takes
    // them as properties.
    Object.assign(secure, h1Timeouts);
    closeRefusedConnectionsGracefully(secure as unknown as http.Server, log);
    h1Errors = secure as unknown as http.Server;
    // Told apart by ALPN: without "h2" the connection speaks HTTP/1.1.
    secure.on("secureConnection", (socket: TLSSocket) => {
      if (socket.alpnProtocol !== "h2") http1.add(socket);
    });
    h2 = secure;
    server = secure as unknown as net.Server;
  } else {
    const cleartextH2 = http2.createServer(h2Options, serve);
    const cleartextH1 = http.createServer(h1Timeouts, serve);
    closeRefusedConnectionsGracefully(cleartextH1, log);
    h1Errors = cleartextH1;
    // Node arms headersTimeout and requestTimeout in the server's own
    // 'listening' handler. This server never listens (the sniffer hands it
    // its sockets), so without this it would enforce neither timer.
    cleartextH1.emit("listening");
    h2 = cleartextH2;
    h1 = cleartextH1;
    server = net.createServer({ noDelay: true }, (socket) => {
      sniffing.add(socket);
      socket.once("close", () => sniffing.delete(socket));
      sniff(socket, limits.sniffTimeoutMs, log, (isH2) => {
        sniffing.delete(socket);
        if (!isH2) http1.add(socket);
        (isH2 ? cleartextH2 : cleartextH1).emit("connection", socket);
      });
    });
  }
  if (upgrade !== undefined) {
    // Node hands every request with an Upgrade header to this event once it has a listener (h2c upgrades too).
    const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      // A WebSocket is no HTTP/1.1 connection any more: its drain is its own (a close frame), not Connection: close.
      if (upgrade(req, socket, head)) return void http1.forget(socket);
      if (h1 !== undefined && hasBody(req, head)) reparseWithoutUpgrade(req, socket, head, h1);
      else serveWithoutUpgrade(req, socket, head, serve);
    };
    h1?.on("upgrade", onUpgrade);
    if (h1 === undefined) h2.on("upgrade", onUpgrade);
  }
  server.on("connection", (socket: Duplex) => {
    sockets.add(socket);
    // Resets and other socket failures (HTTP/1.1 requests the parser refuses
    // are logged by closeRefusedConnectionsGracefully).
    const peer = peerOf(socket);
    socket.on("error", (err: NodeJS.ErrnoException) => log?.info({ err: errorFields(err), peer }, "connection ended by an error"));
    socket.once("close", () => sockets.delete(socket));
  });
  h2.on("sessionError", (err: NodeJS.ErrnoException) => log?.info({ err: errorFields(err) }, "HTTP/2 session ended by an error"));
  // Emitted by the TLS server only.
  (h2 as unknown as NodeJS.EventEmitter).on("tlsClientError", (err: NodeJS.ErrnoException, socket?: Duplex) =>
    log?.info({ err: errorFields(err), peer: socket && peerOf(socket) }, "TLS handshake failed"),
  );
  const sessions = boundHttp2Sessions(h2, limits, bodies);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      const address = server.address() as net.AddressInfo;
      resolve({
        port: address.port,
        close: (graceMs = 10_000) =>
          new Promise<void>((done) => {
            // Stops accepting now; calls back once every connection is gone.
            const cut = setTimeout(() => {
              for (const s of sockets) s.destroy();
            }, graceMs);
            server.close(() => {
              clearTimeout(cut);
              done();
            });
            // A socket still sniffing has sent no request: it may go at once.
            for (const s of sniffing) s.destroy();
            http1.close();
            sessions.closeAll(graceMs);
          }),
      });
    });
  });
}

/** Whether an upgrade request came with a body, which Node has not read. */
function hasBody(req: http.IncomingMessage, head: Buffer): boolean {
  const length = req.headers["content-length"];
  return head.length > 0 || (length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined;
}

/**
 * Serves an upgrade request nobody took (`Upgrade: h2c` from `curl --http2`)
 * as the plain HTTP/1.1 request it also is, as a server that ignores the
 * Upgrade header would, then closes the connection. Node has stopped
 * parsing the connection by then and read no body: a request that has one
 * goes through reparseWithoutUpgrade instead where it can (cleartext), and
 * is refused with 400 where it cannot.
 */
function serveWithoutUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, serve: (req: NodeRequest, res: NodeResponse) => void): void {
  if (hasBody(req, head)) {
    const body = JSON.stringify({ code: "invalid_argument", message: `Upgrade: ${req.headers.upgrade} with a request body is not supported; send the request without Upgrade, or over HTTP/2 with prior knowledge`, details: [] });
    socket.end(`HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    return;
  }
  const res = new http.ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as net.Socket);
  res.once("finish", () => {
    res.detachSocket(socket as net.Socket);
    socket.end();
  });
  serve(req, res);
}

/**
 * Hands an upgrade request with a body (`curl --http2 -d …`) back to the
 * HTTP/1.1 server as the request it would be without its Upgrade header:
 * the request head is written out again without `Upgrade` and
 * `HTTP2-Settings` (and without them in `Connection`), put back in front of
 * the bytes Node read past the head, and the socket is parsed anew — so the
 * body is read, limited and timed like any other, and the connection stays
 * usable for the requests that follow.
 */
function reparseWithoutUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, h1: http.Server): void {
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const value = req.rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === "upgrade" || lower === "http2-settings") continue;
    if (lower === "connection") {
      const kept = value.split(",").map((t) => t.trim()).filter((t) => t !== "" && !/^(upgrade|http2-settings)$/i.test(t));
      if (kept.length > 0) lines.push(`${name}: ${kept.join(", ")}`);
      continue;
    }
    lines.push(`${name}: ${value}`);
  }
  // Node decoded the head as latin1; written back the same way, every byte is as it came.
  socket.unshift(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), head]));
  h1.emit("connection", socket);
}

/**
 * How often Node checks HTTP/1.1 connections against headersTimeout: a
 * tenth of it (Node's default is every 30 s, which would let a slowloris
 * client hold its socket up to 30 s past the limit), at most once a second
 * and at least every 10 ms.
 */
function checkingInterval(limits: ConnectionLimits): number {
  return Math.max(10, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 10)));
}

/** The error Node reports for a request that took too long, which closeRefusedConnectionsGracefully answers with 408. */
function requestTimeout(): NodeJS.ErrnoException {
  return Object.assign(new Error("request body not complete in time"), { code: "ERR_HTTP_REQUEST_TIMEOUT" });
}

/**
 * Reads a cleartext connection's first bytes until they tell HTTP/2 from
 * HTTP/1.1, then hands the socket on with those bytes put back. A socket
 * that says nothing, or trickles the preface, is destroyed after `timeoutMs`.
 */
function sniff(socket: net.Socket, timeoutMs: number, log: Logger | undefined, handOff: (isH2: boolean) => void): void {
  let head = Buffer.alloc(0);
  // A deadline, not an inactivity timeout: one byte a second must not extend it.
  const deadline = setTimeout(() => {
    log?.info({ peer: peerOf(socket), bytes: head.length, timeout_ms: timeoutMs }, "connection closed: no request line or HTTP/2 preface in time");
    socket.destroy();
  }, timeoutMs);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const n = Math.min(head.length, h2Preface.length);
    const couldBeH2 = head.subarray(0, n).equals(h2Preface.subarray(0, n));
    // Wait for more bytes only while they could still be the HTTP/2 preface.
    if (couldBeH2 && head.length < h2Preface.length) return;
    socket.off("data", onData);
    clearTimeout(deadline);
    socket.pause();
    socket.unshift(head);
    handOff(couldBeH2);
    if (!couldBeH2) socket.resume();
  };
  socket.on("data", onData);
  socket.on("error", () => socket.destroy());
  socket.once("close", () => clearTimeout(deadline));
}

/** The remote end of a connection, for logs. */
function peerOf(socket: Duplex): string | undefined {
  const s = socket as Partial<net.Socket>;
  return s.remoteAddress === undefined ? undefined : `${s.remoteAddress}:${s.remotePort}`;
}

/** An error's code and message only: a parser's error may hold the raw bytes it choked on. */
function errorFields(err: NodeJS.ErrnoException): { code: string | undefined; message: string } {
  return { code: err.code, message: err.message };
}
