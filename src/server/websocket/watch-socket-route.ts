import { create, type DescMethodServerStreaming } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-connect";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { WebSocketServer } from "ws";
import { type WatchOperationResponse, WatchOperationRequestSchema } from "../../../gen/anvil/operations/v1/operations_pb.js";
import type { WebSocketLimits } from "../../config.js";
import type { CallObserver } from "../call-observer.js";
import { authOutcomeKey, type CallAuthenticator } from "../../rpc/call-authenticator.js";
import { clampTimerMs } from "../../shared/timer-limit.js";
import { RequestHeaders } from "../fast-unary/request-headers.js";
import type { ServerStreamCall } from "../stream-call.js";
import { type WatchCallInit, WatchSocket } from "./watch-socket.js";

/** Options of createWatchSocketRoute. */
export interface WatchSocketRouteOptions {
  /** OperationService.WatchOperation, whose policy (permission) and interceptors the sockets go through. */
  readonly method: DescMethodServerStreaming;
  /** Its interceptor chain and implementation (createConnectHandler's `streamCalls`). */
  readonly call: ServerStreamCall;
  readonly authenticator: CallAuthenticator;
  readonly limits: WebSocketLimits;
  /** Ping interval; a client that has not answered the previous ping by the next one is cut off. */
  readonly pingMs: number;
  /** Where each socket's call is observed: metrics, server span, access-log line. */
  readonly calls: CallObserver;
  readonly log: Logger;
}

/** The WebSocket route: takes HTTP/1.1 upgrade requests, closes its sockets on drain. */
export interface WatchSocketRoute {
  /** Takes an upgrade request whose path is under `/ws/`; false for any other (the listener serves it as plain HTTP). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** The instance is shutting down: every socket closes with 1001, and new ones are closed at once. */
  drain(): void;
}

// A client sends one small message at most (its `auth` message, a token inside): anything bigger is closed with 1009.
const maxClientMessageBytes = 16 * 1024;

/**
 * `GET /ws/operations/{id}`: watches an operation over a WebSocket (the
 * `ws` package, on the HTTP/1.1 server's `upgrade` event) with typed JSON
 * messages (watch-socket-messages.ts). Each socket is one WatchOperation
 * call through the RPC interceptor chain — authentication, the method's
 * permission, the per-credential stream cap, metrics and the access log
 * apply as to gRPC — and the outcome becomes the close code (watch-socket.ts).
 *
 * Every request under `/ws/` is upgraded when it asks to be, so a browser
 * (which cannot read an HTTP status of a failed handshake) always learns
 * why through the close code; a path that names nothing is 404.
 */
export function createWatchSocketRoute(options: WatchSocketRouteOptions): WatchSocketRoute {
  const server = new WebSocketServer({ noServer: true, maxPayload: maxClientMessageBytes, perMessageDeflate: false, clientTracking: false });
  const open = new Set<WatchSocket>();
  let draining = false;
  return {
    upgrade(req, socket, head) {
      const url = req.url ?? "/";
      const path = url.split("?", 1)[0]!;
      if (!path.startsWith("/ws/")) return false;
      const match = /^\/ws\/operations\/([^/]+)$/.exec(path);
      let id: string | undefined;
      try {
        id = match ? decodeURIComponent(match[1]!) : undefined;
      } catch {
        id = undefined;
      }
      if (id === undefined) {
        refuseHandshake(socket, 404, `no WebSocket route ${path}; watch an operation at /ws/operations/{id}`);
        return true;
      }
      const operationId = id;
      server.handleUpgrade(req, socket, head, (ws) => {
        const watch = new WatchSocket(ws, req, options, (init) => start(req, operationId, init));
        open.add(watch);
        if (draining) watch.goingAway();
        void watch.run().finally(() => open.delete(watch));
      });
      return true;
    },
    drain() {
      draining = true;
      for (const watch of open) watch.goingAway();
    },
  };

  /** The WatchOperation call of one socket, once its credential is known. */
  async function start(req: IncomingMessage, id: string, init: WatchCallInit): Promise<AsyncIterable<WatchOperationResponse>> {
    const requestHeader = new RequestHeaders(init.headers);
    const auth = await options.authenticator.decide(options.method, requestHeader, req.socket?.remoteAddress);
    const values = init.values;
    values.set(authOutcomeKey, auth);
    // As on REST: a refused caller's query is not looked at; the chain refuses the call first.
    const after = "refused" in auth ? "0" : (init.query.get("after_sequence") ?? "0");
    if (!/^\d{1,19}$/.test(after)) throw new ConnectError("after_sequence must be a non-negative integer", Code.InvalidArgument);
    for (const name of "refused" in auth ? [] : init.query.keys()) {
      if (name !== "after_sequence") throw new ConnectError(`unknown query parameter ${name}`, Code.InvalidArgument);
    }
    const timeoutHeader = req.headers["connect-timeout-ms"];
    const timeout = parseTimeout(typeof timeoutHeader === "string" ? timeoutHeader : null, Number.MAX_SAFE_INTEGER);
    if (timeout.error) throw timeout.error;
    return options.call(
      {
        requestMethod: "GET",
        url: init.redactedUrl,
        protocolName: "websocket",
        requestHeader,
        signal: init.signal,
        timeoutMs: clampTimerMs(timeout.timeoutMs),
        contextValues: values,
      },
      create(WatchOperationRequestSchema, { id, afterSequence: BigInt(after) }),
    ) as AsyncIterable<WatchOperationResponse>;
  }
}

/** Answers a handshake that will not become a WebSocket with a plain HTTP error, then closes the connection. */
function refuseHandshake(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ code: status === 404 ? "not_found" : "invalid_argument", message, details: [] });
  socket.end(`HTTP/1.1 ${status} ${status === 404 ? "Not Found" : "Bad Request"}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}
