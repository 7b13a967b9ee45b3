import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { NodeRequest, NodeResponse } from "./connect-handler.js";

/** Options of listen(). */
export interface ListenOptions {
  readonly port: number;
  readonly host: string;
  /** PEM files; when both are set the port speaks TLS (ALPN h2 and http/1.1). */
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
}

/** A listening server. */
export interface Listening {
  readonly port: number;
  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

// Every HTTP/2 connection with prior knowledge opens with this preface.
const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Serves `handle` on one port for every client: HTTP/1.1 (Connect, gRPC-Web,
 * REST, browsers) and HTTP/2 — over TLS chosen by ALPN, or in cleartext with
 * prior knowledge as `grpcurl -plaintext` and `buf curl
 * --http2-prior-knowledge` speak it. Cleartext connections are told apart by
 * their first bytes: only HTTP/2 starts with the connection preface.
 */
export function listen(handle: (req: NodeRequest, res: NodeResponse) => void, options: ListenOptions): Promise<Listening> {
  const sockets = new Set<Duplex>();
  let server: net.Server;
  let h2: http2.Http2Server | http2.Http2SecureServer;
  let h1: http.Server | undefined;
  const h2Options = { settings: { maxConcurrentStreams: 1000 }, maxSessionMemory: 64 };
  if (options.tlsCert && options.tlsKey) {
    h2 = http2.createSecureServer(
      { ...h2Options, cert: readFileSync(options.tlsCert), key: readFileSync(options.tlsKey), allowHTTP1: true, ALPNProtocols: ["h2", "http/1.1"] },
      handle,
    );
    server = h2 as unknown as net.Server;
  } else {
    const cleartextH2 = http2.createServer(h2Options, handle);
    const cleartextH1 = http.createServer({ keepAliveTimeout: 65_000, headersTimeout: 30_000, requestTimeout: 0 }, handle);
    h2 = cleartextH2;
    h1 = cleartextH1;
    server = net.createServer({ noDelay: true }, (socket) => sniff(socket, cleartextH2, cleartextH1));
  }
  server.on("connection", (socket: Duplex) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  const sessions = new Set<http2.Http2Session>();
  h2.on("session", (session: http2.Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      const address = server.address() as net.AddressInfo;
      resolve({
        port: address.port,
        close: (graceMs = 10_000) =>
          new Promise<void>((done) => {
            server.close(() => done());
            h1?.closeIdleConnections();
            for (const s of sessions) s.close();
            const timer = setTimeout(() => {
              for (const s of sockets) s.destroy();
            }, graceMs);
            timer.unref();
          }),
      });
    });
  });
}

function sniff(socket: net.Socket, h2: http2.Http2Server, h1: http.Server): void {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const n = Math.min(head.length, h2Preface.length);
    const couldBeH2 = head.subarray(0, n).equals(h2Preface.subarray(0, n));
    // Wait for more bytes only while they could still be the HTTP/2 preface.
    if (couldBeH2 && head.length < h2Preface.length) return;
    socket.off("data", onData);
    socket.pause();
    socket.unshift(head);
    (couldBeH2 ? h2 : h1).emit("connection", socket);
    if (!couldBeH2) socket.resume();
  };
  socket.on("data", onData);
  socket.on("error", () => socket.destroy());
}
