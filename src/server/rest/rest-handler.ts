import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { create, type DescMethod, type JsonObject, type JsonValue, type Message, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson, parseTimeout } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import { type AuthOutcome, authOutcomeKey, type CallAuthenticator } from "../../rpc/call-authenticator.js";
import { rateLimitHeaders } from "../../rpc/rate-limit-headers.js";
import type { BodyLimits } from "../body-limits.js";
import type { NodeRequest, NodeResponse, RouteHandler } from "../connect-handler.js";
import { LazyAbort } from "../fast-unary/lazy-abort.js";
import { RequestHeaders } from "../fast-unary/request-headers.js";
import { fromJsonInSlices } from "../message-decoding.js";
import type { UnaryCall } from "../fast-unary/unary-call.js";
import { sendBody } from "../http-compression.js";
import { setPrivateCaching } from "../private-caching.js";
import type { PathBindings } from "./path-template.js";
import { isJsonBodyType } from "./json-body-type.js";
import { parseQueryString } from "./query-string.js";
import { readRequestBody } from "./request-body.js";
import { errorStatus, sendRestError } from "./rest-errors.js";
import type { RestRoute } from "./rest-routes.js";
import { RouteIndex } from "./route-index.js";
import { transcodeRequest } from "./transcode.js";
import { clampTimerMs } from "../../shared/timer-limit.js";
import type { CallObserver, ObservedCall } from "../call-observer.js";
import type { SseBindings } from "../sse/event-stream.js";
import { serveEventStream } from "../sse/serve-event-stream.js";
import type { ServerStreamCall } from "../stream-call.js";
import type { RefusalAudit } from "../../rpc/refusal-audit.js";
import { serveJsonLines, servedAsJsonLines } from "./rest-stream.js";

/** Options of createRestHandler. */
export interface RestHandlerOptions {
  readonly routes: readonly RestRoute[];
  /**
   * Every unary method's interceptor chain and implementation
   * (createConnectHandler's `unaryCalls`); a REST call runs through the
   * same one as an RPC call.
   */
  readonly unaryCalls: ReadonlyMap<DescMethod, UnaryCall>;
  /** Every server-streaming method's interceptor chain and implementation (createConnectHandler's `streamCalls`). */
  readonly streamCalls: ReadonlyMap<DescMethod, ServerStreamCall>;
  /** How the server-streaming methods with GET routes are sent as server-sent events. */
  readonly sse: SseBindings;
  /** connect's handlers of every method: server streams REST serves as JSON Lines run through them (see rest-stream.ts). */
  readonly streamHandlers: readonly UniversalHandler[];
  /** Where refusals REST decides itself, before the interceptors run, are recorded. */
  readonly refusals: RefusalAudit;
  /** Decides from the headers, before the body is read, whether the caller may call. */
  readonly authenticator: CallAuthenticator;
  /** Each route's body limit: its method's. */
  readonly bodyLimits: BodyLimits;
  readonly compressMinBytes: number;
  readonly log: Logger;
  /** Where every call is counted (by its RPC and its route's template), traced and logged. */
  readonly calls: CallObserver;
}

/**
 * Serves the REST routes of the `google.api.http` annotations. A REST call
 * is transcoded into the request message of its RPC and run through the
 * very interceptor chain and implementation an RPC call reaches, with the
 * caller's headers — so authentication, permissions, validation, limits,
 * logging and error mapping run exactly as for RPC, and REST can do nothing
 * an RPC call could not. The answer is the response's proto3 JSON (or its
 * `response_body` field), or `{code, message, details}` with the HTTP status
 * of the error's code. A server-streaming method's route naming a repeated
 * `response_body` answers JSON Lines (see rest-stream.ts); its other GET
 * routes answer `text/event-stream` (see serve-event-stream.ts); its other
 * routes answer UNIMPLEMENTED.
 */
export function createRestHandler(options: RestHandlerOptions): RouteHandler {
  const index = new RouteIndex(options.routes);
  for (const route of options.routes) {
    if (route.method.methodKind === "unary" && !options.unaryCalls.has(route.method)) {
      throw new Error(`no RPC handler for ${route.method.parent.typeName}.${route.method.name}, which has a REST route`);
    }
    if (servedAsJsonLines(route)) {
      if (!options.streamHandlers.some((h) => h.method === route.method)) throw new Error(`no RPC handler for ${route.method.parent.typeName}.${route.method.name}, which has a REST route`);
      continue;
    }
    if (route.method.methodKind === "server_streaming" && route.httpMethod === "GET" && !(options.streamCalls.has(route.method) && options.sse.has(route.method))) {
      throw new Error(`no server-sent events binding for ${route.method.parent.typeName}.${route.method.name}, which has a GET route`);
    }
  }
  return (req, res) => {
    // Stryker disable next-line StringLiteral: equivalent: node's server sets the URL of every request it hands out
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    const matches = index.match(path);
    if (matches.length === 0) return false;
    const match = matches.find((m) => m.route.httpMethod === req.method);
    if (!match) {
      const allow = [...new Set(matches.map((m) => m.route.httpMethod))].join(", ");
      res.setHeader("allow", allow);
      void sendRestError(req, res, new ConnectError(`${req.method} is not allowed on ${path}; use ${allow}`, Code.Unimplemented), options.compressMinBytes, 405);
      return true;
    }
    if (req.method === "GET") setPrivateCaching(res);
    const call = options.unaryCalls.get(match.route.method);
    const lines = servedAsJsonLines(match.route) ? options.streamHandlers.find((h) => h.method === match.route.method) : undefined;
    const rawQuery = q === -1 ? "" : url.slice(q + 1);
    // One observer per call: a failure past the handler is logged, counted as cancelled, and answered when it still can be.
    const observed = (what: string, work: (meter: ObservedCall) => Promise<void>, recover?: () => void) => {
      void options.calls.observe(match.route.method, "rest", req, restRouteLabel(match.route), work, (err) => {
        options.log.debug({ err, path }, `${what} not completed`);
        recover?.();
      });
      return true;
    };
    const answerInternal = () => {
      if (!res.headersSent) void sendRestError(req, res, new ConnectError("internal error", Code.Internal), options.compressMinBytes);
    };
    if (lines !== undefined) {
      return observed("REST stream", (meter) => serveStream(req, res, match.route, match.bindings, rawQuery, lines, options, meter), () => {
        // Mid-stream there is no status left to send: cutting the response tells the client it is incomplete.
        if (res.headersSent) res.destroy();
        else answerInternal();
      });
    }
    if (match.route.method.methodKind === "server_streaming" && match.route.httpMethod === "GET") {
      // Start-up made sure every such route has its stream call and its binding.
      const { route, bindings } = match;
      const stream = options.streamCalls.get(route.method)!;
      const binding = options.sse.get(route.method)!;
      return observed("event stream", (meter) =>
        serveEventStream(req, res, { route, bindings, call: stream, binding, authenticator: options.authenticator, compressMinBytes: options.compressMinBytes, meter }),
      );
    }
    if (call === undefined) {
      // A streaming method without a GET route: it has no single JSON reply.
      return observed("REST refusal", async (meter) => {
        meter.code(Code.Unimplemented);
        meter.sent(await sendRestError(req, res, new ConnectError("streaming methods are not available over REST; call them with Connect or gRPC", Code.Unimplemented), options.compressMinBytes));
      });
    }
    return observed("REST response", (meter) => serve(req, res, match.route, match.bindings, rawQuery, call, options, meter), answerInternal);
  };
}

async function serve(
  req: NodeRequest,
  res: NodeResponse,
  route: RestRoute,
  bindings: PathBindings,
  rawQuery: string,
  call: UnaryCall,
  options: RestHandlerOptions,
  meter: ObservedCall,
): Promise<void> {
  const requestHeader = new RequestHeaders(req.headers);
  // Stryker disable next-line OptionalChaining: equivalent: node's server hands out every request with its socket
  const auth = await options.authenticator.decide(route.method, requestHeader, req.socket?.remoteAddress);
  // A refused caller's body is never read, nor its path and query: the
  // interceptor chain refuses the call before anything looks at its message.
  let json: JsonObject | undefined;
  try {
    if (!("refused" in auth)) json = await readJson(req, route, bindings, rawQuery, options, meter);
  } catch (err) {
    // Refused before the RPC (the call's observer logs it with its code).
    const error = ConnectError.from(err);
    options.refusals.record(error, refusedCall(req, route, requestHeader, auth));
    meter.code(error.code);
    if (auth.limit !== undefined) for (const [name, value] of rateLimitHeaders(auth.limit)) res.setHeader(name, value);
    meter.sent(await sendRestError(req, res, error, options.compressMinBytes, errorStatus(error)));
    return;
  }
  meter.values.set(authOutcomeKey, auth);
  const timeoutHeader = req.headers["connect-timeout-ms"];
  const timeout = parseTimeout(typeof timeoutHeader === "string" ? timeoutHeader : null, Number.MAX_SAFE_INTEGER);
  const responseHeader = new Headers();
  const abort = new LazyAbort();
  const onClose = () => {
    if (!res.writableEnded) abort.abort(new ConnectError("client disconnected", Code.Canceled));
  };
  res.once("close", onClose);
  let out: JsonValue;
  let status = 200;
  let code: Code | 0 = 0;
  try {
    if (timeout.error) throw timeout.error;
    let input: Message;
    try {
      input = json === undefined ? create(route.method.input) : await fromJsonInSlices(route.method.input, json);
    } catch (err) {
      throw ConnectError.from(err, Code.InvalidArgument);
    }
    const response = await call(
      {
        // Stryker disable next-line LogicalOperator,StringLiteral: equivalent: node sets every request's method, and nothing in Anvil reads a call's requestMethod
        requestMethod: req.method ?? "GET",
        // Stryker disable next-line LogicalOperator,StringLiteral: equivalent: node sets every request's URL, and nothing in Anvil reads a call's url
        url: req.url ?? "/",
        // Stryker disable next-line StringLiteral: equivalent: nothing in Anvil reads a call's protocolName (the audit log and metrics take the protocol from the call's context values)
        protocolName: "rest",
        requestHeader,
        responseHeader,
        responseTrailer: new Headers(),
        abort,
        timeoutMs: clampTimerMs(timeout.timeoutMs),
        contextValues: meter.values,
      },
      input,
    );
    const message = toJson(route.method.output, response.message) as JsonObject;
    out = route.responseBody ? (message[route.responseBody.jsonName] ?? emptyValue(route.responseBody.fieldKind)) : message;
  } catch (err) {
    const error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
    status = codeToHttpStatus(error.code);
    code = error.code;
    error.metadata.forEach((value, name) => responseHeader.set(name, value));
    out = { details: [], ...errorToJson(error, undefined) } as JsonValue;
  } finally {
    res.off("close", onClose);
  }
  const headers: Record<string, string> = {};
  responseHeader.forEach((value, name) => {
    headers[name] = value;
  });
  headers["content-type"] = "application/json";
  meter.code(code);
  meter.sent(await sendBody(req, res, status, headers, new TextEncoder().encode(JSON.stringify(out)), options.compressMinBytes));
}

/** The request message's JSON from the path, the query and the body (read within the route's limit). */
async function readJson(
  req: NodeRequest,
  route: RestRoute,
  bindings: PathBindings,
  rawQuery: string,
  options: RestHandlerOptions,
  meter: ObservedCall,
): Promise<JsonObject> {
  const type = req.headers["content-type"];
  if (!isJsonBodyType(type)) {
    throw new ConnectError(`unsupported Content-Type ${JSON.stringify(type)}; send application/json`, Code.Unimplemented);
  }
  return transcodeRequest(route, bindings, parseQueryString(rawQuery), await readRequestBody(req, options.bodyLimits.forMethod(route.method), (n) => meter.received(n)));
}

/** A streamed REST call: decided, read and refused as a unary one, then run as JSON Lines. */
async function serveStream(
  req: NodeRequest,
  res: NodeResponse,
  route: RestRoute,
  bindings: PathBindings,
  rawQuery: string,
  handler: UniversalHandler,
  options: RestHandlerOptions,
  meter: ObservedCall,
): Promise<void> {
  const requestHeader = new RequestHeaders(req.headers);
  // Stryker disable next-line OptionalChaining: equivalent: node's server hands out every request with its socket
  const auth = await options.authenticator.decide(route.method, requestHeader, req.socket?.remoteAddress);
  let json: JsonObject = {};
  try {
    if (!("refused" in auth)) json = await readJson(req, route, bindings, rawQuery, options, meter);
  } catch (err) {
    const error = ConnectError.from(err);
    options.refusals.record(error, refusedCall(req, route, requestHeader, auth));
    meter.code(error.code);
    meter.sent(await sendRestError(req, res, error, options.compressMinBytes, errorStatus(error)));
    return;
  }
  meter.values.set(authOutcomeKey, auth);
  await serveJsonLines(req, res, route, json, handler, meter.values, options.compressMinBytes, meter);
}

/** A call REST refused before the interceptors, as the audit log records it. */
function refusedCall(req: NodeRequest, route: RestRoute, headers: RequestHeaders, auth: AuthOutcome) {
  return {
    method: route.method,
    protocol: "rest",
    headers,
    clientAddress: auth.client,
    principal: "principal" in auth ? auth.principal : undefined,
  };
}

/** What proto3 JSON omits for an unset field, written out so `response_body` is never empty. */
function emptyValue(kind: string): JsonValue {
  if (kind === "list") return [];
  if (kind === "message" || kind === "map") return {};
  return null;
}

/** A route's label in the metrics: its HTTP method and path template (`GET /v1/{name=users/*}`), never the path itself. */
export function restRouteLabel(route: RestRoute): string {
  return `${route.httpMethod} ${route.template.source}`;
}
