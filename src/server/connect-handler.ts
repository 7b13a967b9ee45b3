import { Code, ConnectError, type ConnectRouter, type ConnectRouterOptions, createConnectRouter } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Logger } from "pino";
import type { DescMethod, DescMethodUnary, DescService } from "@bufbuild/protobuf";
import { authOutcomeKey, type CallAuthenticator } from "../rpc/call-authenticator.js";
import { toConnectError } from "../rpc/error-mapping.js";
import { setRateLimitHeaders } from "../rpc/rate-limit-headers.js";
import { requestIdHeader } from "../rpc/request-id-interceptor.js";
import { requestIdKey } from "../rpc/request-context.js";
import { streamingBody } from "./body-deadlines.js";
import type { CallObserver, ObservedCall } from "./call-observer.js";
import { reclassifyBinaryParseErrors } from "./binary-parse-errors.js";
import { clampDeadlineHeaders } from "./deadline-headers.js";
import { strictUtf8 } from "./message-decoding.js";
import type { BodyLimits } from "./body-limits.js";
import { createFastUnaryHandler } from "./fast-unary/fast-unary-handler.js";
import { composeUnaryCall, type UnaryCall, type UnaryImpl } from "./fast-unary/unary-call.js";
import { encodeGrpcMessageAsSpecified } from "./grpc-message-encoding.js";
import { decodeGrpcWebTextRequest, encodeGrpcWebTextResponse, isGrpcWebText } from "./grpc-web-text.js";
import { codeFromHttpStatus } from "@connectrpc/connect/protocol-connect";
import type { CallMeter, RpcProtocol } from "../metrics/rpc-metrics.js";
import { callMeterKey } from "../rpc/metrics-interceptor.js";
import { type ClientStreamCall, composeClientStreamCall, composeServerStreamCall, isClientStreaming, isServerStreaming, type ServerStreamCall } from "./stream-call.js";
import type { RefusalAudit } from "../rpc/refusal-audit.js";
import { protocolOf } from "../rpc/call-facts.js";

export type NodeRequest = IncomingMessage | Http2ServerRequest;
export type NodeResponse = ServerResponse | Http2ServerResponse;

/** Answers a request if its path is an RPC; returns false to let the next route try. */
export type RouteHandler = (req: NodeRequest, res: NodeResponse) => boolean;

/** Options of createConnectHandler. */
export interface ConnectHandlerOptions extends ConnectRouterOptions {
  readonly routes: (router: ConnectRouter) => void;
  readonly log: Logger;
  /**
   * Serve unary methods on the fast path (src/server/fast-unary/) — on
   * unless set to false; off leaves every call to connect's universal
   * handler, which the benchmarks and the serving-path tests compare against.
   */
  readonly fastUnary?: boolean;
  /** Decides from the headers, before any body is read, whether the caller may call. */
  readonly authenticator: CallAuthenticator;
  /** Where refusals decided before the interceptors run are recorded (the interceptors record their own). */
  readonly refusals: RefusalAudit;
  /** Each method's request body limit (readMaxBytes is only the default). */
  readonly bodyLimits: BodyLimits;
  /** Where every call is counted, traced and logged (call-observer.ts). */
  readonly calls: CallObserver;
}

interface Registration {
  readonly service: DescService;
  readonly impl: Record<string, unknown>;
}

/**
 * A router that also remembers which implementation each service got, and
 * registers the methods of a service with body limits of their own one by
 * one, each with its readMaxBytes.
 */
function recordRegistrations(router: ConnectRouter, limits: BodyLimits): { router: ConnectRouter; services: Registration[] } {
  const services: Registration[] = [];
  const recording: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, impl, opts) {
      services.push({ service, impl: impl as Record<string, unknown> });
      if (!limits.anyOwn(service.methods)) {
        router.service(service, impl, opts);
        return recording;
      }
      for (const method of service.methods) {
        const fn = (impl as Record<string, unknown>)[method.localName];
        if (typeof fn !== "function") throw new Error(`${service.typeName}.${method.name} has a body limit but no implementation`);
        router.rpc(method, fn.bind(impl) as never, { ...opts, readMaxBytes: limits.forMethod(method) });
      }
      return recording;
    },
    rpc(method, impl, opts) {
      router.rpc(method, impl, opts);
      return recording;
    },
  };
  return { router: recording, services };
}

/** The interceptor chain and implementation of every registered unary method, composed once. */
function composeUnaryCalls(services: readonly Registration[], options: ConnectRouterOptions): Map<DescMethod, UnaryCall> {
  const calls = new Map<DescMethod, UnaryCall>();
  for (const { service, impl } of services) {
    for (const method of service.methods) {
      const fn = impl[method.localName];
      if (method.methodKind !== "unary" || typeof fn !== "function") continue;
      calls.set(method, composeUnaryCall(service, method as DescMethodUnary, fn.bind(impl) as UnaryImpl, options.interceptors ?? []));
    }
  }
  return calls;
}

/** The interceptor chain and implementation of every registered server-streaming method (for SSE and WebSocket). */
function composeStreamCalls(services: readonly Registration[], options: ConnectRouterOptions): Map<DescMethod, ServerStreamCall> {
  const calls = new Map<DescMethod, ServerStreamCall>();
  for (const { service, impl } of services) {
    for (const method of service.methods) {
      const fn = impl[method.localName];
      if (!isServerStreaming(method) || typeof fn !== "function") continue;
      calls.set(method, composeServerStreamCall(method, fn.bind(impl) as never, options.interceptors ?? []));
    }
  }
  return calls;
}

/** The interceptor chain and implementation of every registered client-streaming method. */
function composeClientStreamCalls(services: readonly Registration[], options: ConnectRouterOptions): Map<DescMethod, ClientStreamCall> {
  const calls = new Map<DescMethod, ClientStreamCall>();
  for (const { service, impl } of services) {
    for (const method of service.methods) {
      const fn = impl[method.localName];
      if (!isClientStreaming(method) || typeof fn !== "function") continue;
      calls.set(method, composeClientStreamCall(method, fn.bind(impl) as never, options.interceptors ?? []));
    }
  }
  return calls;
}

/** A fast-path handler for every unary method, by request path. */
function fastUnaryRoutes(calls: ReadonlyMap<DescMethod, UnaryCall>, options: ConnectHandlerOptions): Map<string, RouteHandler> {
  const routes = new Map<string, RouteHandler>();
  for (const [method, call] of calls) {
    routes.set(
      `/${method.parent.typeName}/${method.name}`,
      createFastUnaryHandler({
        method: method as DescMethodUnary,
        call,
        authenticator: options.authenticator,
        refusals: options.refusals,
        readMaxBytes: options.bodyLimits.forMethod(method),
        compressMinBytes: options.compressMinBytes ?? 1024,
        acceptCompression: options.acceptCompression ?? [],
        calls: options.calls,
      }),
    );
  }
  return routes;
}

/**
 * Serves every registered service over gRPC, gRPC-Web and Connect. This is
 * connect-node's `connectNodeAdapter` with three changes: a path that is not
 * an RPC falls through to Anvil's other routes (REST, health), binary
 * parse errors are reported as INVALID_ARGUMENT (see binary-parse-errors.ts),
 * and `grpc-message` is percent-encoded as the gRPC spec says (see
 * grpc-message-encoding.ts).
 */
export function createConnectHandler(options: ConnectHandlerOptions): {
  handle: RouteHandler;
  handlers: readonly UniversalHandler[];
  /** Every unary method's interceptors and implementation, for transports beside Connect's (REST). */
  unaryCalls: ReadonlyMap<DescMethod, UnaryCall>;
  /** Every server-streaming method's interceptors and implementation, for SSE and WebSocket. */
  streamCalls: ReadonlyMap<DescMethod, ServerStreamCall>;
  /** Every client-streaming method's interceptors and implementation, for the artifact upload's plain PUT. */
  clientStreamCalls: ReadonlyMap<DescMethod, ClientStreamCall>;
} {
  const routerOptions = {
    acceptCompression: [compressionGzip, compressionBrotli],
    // connect decodes JSON leniently (invalid UTF-8 becomes U+FFFD); Anvil refuses it, as on the fast path.
    // Its JSON serialization reads `textDecoder` from these options (JsonSerializationOptions), though the
    // router's type names only the protobuf JSON options; test/hostile/true-codes.test.ts guards it.
    jsonOptions: { textDecoder: strictUtf8 } as ConnectRouterOptions["jsonOptions"],
    ...options,
    readMaxBytes: options.bodyLimits.defaultBytes,
  };
  const router = createConnectRouter(routerOptions);
  const registered = recordRegistrations(router, options.bodyLimits);
  options.routes(registered.router);
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set(h.requestPath, h);
  const unaryCalls = composeUnaryCalls(registered.services, routerOptions);
  const fast = options.fastUnary === false ? new Map<string, RouteHandler>() : fastUnaryRoutes(unaryCalls, routerOptions);
  const handle: RouteHandler = (req, res) => {
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    // gRPC-Web text is translated around connect's handler (grpc-web-text.ts); the fast path serves binary only.
    const text = isGrpcWebText(req.headers["content-type"]);
    if (!text && fast.get(path)?.(req, res)) return true;
    const handler = paths.get(path);
    if (!handler) return false;
    const call = options.calls.begin(handler.method, universalProtocol(req.headers["content-type"]), req);
    serveUniversal(handler, req, res, call).catch((err: unknown) => {
      // The client went away mid-response; nothing is left to tell it.
      options.log.debug({ err, rpc: handler.requestPath }, "response not completed");
    });
    return true;
  };

  async function serveUniversal(handler: UniversalHandler, req: NodeRequest, res: NodeResponse, meter: ObservedCall): Promise<void> {
    const answer: { res?: UniversalServerResponse } = {};
    // Counted when the response is done: connect-node's
    // universalResponseToNodeResponse waits for an "end" event a Node
    // response never emits, so its promise does not settle after success.
    res.once("close", () => {
      // Not coded by the interceptors: connect answered before them (a body
      // it could not read or parse, a request method it does not allow), or
      // the client left first.
      if (!meter.coded) meter.code(answer.res !== undefined && res.writableFinished ? codeOfAnswer(answer.res) : Code.Canceled);
      meter.end();
    });
    await serveMetered(handler, req, res, meter, answer);
  }

  async function serveMetered(
    handler: UniversalHandler,
    req: NodeRequest,
    res: NodeResponse,
    meter: ObservedCall,
    answer: { res?: UniversalServerResponse },
  ): Promise<void> {
    const values = meter.values;
    values.set(callMeterKey, meter);
    const auth = await options.authenticator.decide(handler.method, req.headers, req.socket?.remoteAddress);
    values.set(authOutcomeKey, auth);
    // connect reads the body before it runs the interceptors; a refused
    // caller's body is not read at all: connect answers with the refusal
    // in the protocol's own framing, as for a body it cannot read.
    let body: AsyncIterable<Uint8Array>;
    if ("refused" in auth) {
      // The interceptors never see this call; the call's observer logs it.
      const error = refusal(auth.refused, values.get(requestIdKey));
      setRateLimitHeaders(error.metadata, auth.limit);
      options.refusals.record(error, {
        method: handler.method,
        protocol: protocolOf(req.headers),
        headers: req.headers,
        clientAddress: auth.client,
        principal: undefined,
      });
      meter.code(error.code);
      body = refusedBody(error);
    } else {
      body = readOrDiscard(req, meter, handler.method.methodKind === "client_streaming" || handler.method.methodKind === "bidi_streaming");
    }
    const text = isGrpcWebText(req.headers["content-type"]);
    const nodeReq = { ...universalRequestFromNodeRequest(req, res, undefined, values), body };
    const uReq = text ? decodeGrpcWebTextRequest(nodeReq) : nodeReq;
    clampDeadlineHeaders(uReq.header);
    const answered = encodeGrpcMessageAsSpecified(await reclassifyBinaryParseErrors(withAllow(await handler(uReq), handler)));
    const uRes = text ? encodeGrpcWebTextResponse(answered) : answered;
    answer.res = uRes;
    await universalResponseToNodeResponse(countSent(uRes, meter), res);
  }
  return {
    handle,
    handlers: router.handlers,
    unaryCalls,
    streamCalls: composeStreamCalls(registered.services, routerOptions),
    clientStreamCalls: composeClientStreamCalls(registered.services, routerOptions),
  };
}

/**
 * A refused call's error as the interceptor chain would have sent it:
 * mapped in the one place, with the call's correlation id.
 */
function refusal(refused: unknown, id: string): ConnectError {
  const error = toConnectError(refused, id);
  error.metadata.set(requestIdHeader, id);
  return error;
}

/** A request body that fails with `error` when read, without reading the request. */
async function* refusedBody(error: ConnectError): AsyncIterable<Uint8Array> {
  throw error;
}

/** connect answers a request method it does not allow with 405 but no `Allow`, which HTTP requires. */
function withAllow(res: UniversalServerResponse, handler: UniversalHandler): UniversalServerResponse {
  if (res.status !== 405) return res;
  const header = new Headers(res.header);
  header.set("allow", handler.allowedMethods.join(", "));
  return { ...res, header };
}

/**
 * The request body as connect reads it, except that when connect stops
 * reading early (a body over readMaxBytes) the rest is discarded instead of
 * the request being destroyed: a destroyed request leaves its keep-alive
 * HTTP/1.1 socket paused mid-body, so the next request on that connection
 * would hang. The fast path discards the same way (fast-unary/read-body.ts).
 */
async function* readOrDiscard(req: NodeRequest, meter: CallMeter, streamed: boolean): AsyncIterable<Uint8Array> {
  try {
    for await (const chunk of req.iterator({ destroyOnReturn: false })) {
      // A client stream (an artifact upload) is read by its handler as it
      // arrives, for an authenticated caller: timed by the gap between
      // pieces, not the request deadline. A unary body is read whole first.
      if (streamed) streamingBody(req);
      meter.received((chunk as Uint8Array).byteLength);
      yield chunk as Uint8Array;
    }
  } catch (err) {
    // Reading fails only when the client went away mid-body.
    throw ConnectError.from(err, Code.Canceled);
  } finally {
    if (!req.complete) req.resume();
  }
}

/** The protocol family of a request connect's universal handler serves, by its content type. */
function universalProtocol(contentType: string | undefined): RpcProtocol {
  if (contentType?.startsWith("application/grpc-web")) return "grpc_web";
  if (contentType?.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/** The response with its body bytes counted as they are written. */
function countSent(res: UniversalServerResponse, meter: CallMeter): UniversalServerResponse {
  const body = res.body;
  if (body === undefined) return res;
  if (body instanceof Uint8Array) {
    meter.sent(body.byteLength);
    return res;
  }
  return {
    ...res,
    body: (async function* () {
      for await (const chunk of body) {
        meter.sent(chunk.byteLength);
        yield chunk;
      }
    })(),
  };
}

/**
 * The code of an answer connect made without the interceptors, which is
 * never a success (only the implementation succeeds): gRPC puts it in
 * `grpc-status` (a trailers-only response carries it in the headers),
 * Connect unary in the HTTP status; gRPC-Web and Connect streams put it in
 * the body, which is not parsed again here: Unknown.
 */
function codeOfAnswer(res: UniversalServerResponse): Code {
  const status = res.trailer?.get("grpc-status") ?? new Headers(res.header).get("grpc-status");
  if (status !== null && status !== undefined && Number(status) > 0) return Number(status) as Code;
  if (res.status !== 200) return codeFromHttpStatus(res.status);
  return Code.Unknown;
}
