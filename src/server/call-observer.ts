import type { DescMethod } from "@bufbuild/protobuf";
import { Code, type ContextValues, createContextValues } from "@connectrpc/connect";
import { type Attributes, type Span, SpanKind, type SpanOptions, SpanStatusCode } from "@opentelemetry/api";
import type { Logger } from "pino";
import { credentialName } from "../auth/principal.js";
import type { CallMeter, RpcMetrics, RpcProtocol } from "../metrics/rpc-metrics.js";
import { clientAddressKey, principalKey, protocolKey, requestIdKey, traceKey } from "../rpc/request-context.js";
import { requestIdHeader, requestIdOf } from "../rpc/request-id-interceptor.js";
import { connectErrorCode, contextFromHeaders, tracer, tracingEnabled, withCallSpan } from "../tracing/tracing.js";
import { clientAddress } from "./client-address.js";
import type { NodeRequest } from "./connect-handler.js";

/**
 * One call as every transport (the fast unary path, connect's universal
 * handler, REST) observes it: its metrics meter, its server span and its
 * access-log line, all ended once, when the response is done (for a
 * stream: when it ends), with the code the meter was given.
 */
export interface ObservedCall extends CallMeter {
  /** The call's context values, its request id (and trace context, when tracing is on) already set: the interceptors get these. */
  readonly values: ContextValues;
}

/**
 * Begins the observation of each call: counts it (RpcMetrics), starts its
 * server span when tracing is on — named `package.Service/Method`, a child
 * of the `traceparent` the caller sent in its gRPC metadata or HTTP headers,
 * with the RPC semantic-convention attributes — and writes one `info` line
 * when it ends: request id, trace and span ids, credential (kind:id, never
 * the credential itself), method, protocol, code and the call's whole
 * duration from the request's arrival.
 */
export class CallObserver {
  readonly #metrics: RpcMetrics;
  readonly #log: Logger;

  constructor(metrics: RpcMetrics, log: Logger) {
    this.#metrics = metrics;
    this.#log = log;
  }

  /**
   * Observes one call from its start to its end: begins it (see begin), runs
   * `serve`, and ends the call once `serve`
   * settles. A failure `serve` lets out — the client left, a write failed —
   * counts the call as CANCELLED (unless it already has its code) and goes
   * to `failed`, which answers what can still be answered; without `failed`
   * the returned promise rejects with it, after the call has ended.
   *
   * @example
   *   void calls.observe(method, "rest", req, route, (call) => serve(req, res, call), () => res.destroy());
   */
  async observe(
    method: DescMethod,
    protocol: RpcProtocol,
    req: NodeRequest,
    route: string,
    serve: (call: ObservedCall) => Promise<void>,
    failed?: (err: unknown) => void,
  ): Promise<void> {
    const call = this.begin(method, protocol, req, route);
    try {
      await serve(call);
    } catch (err) {
      call.code(Code.Canceled);
      if (failed === undefined) throw err;
      failed(err);
    } finally {
      call.end();
    }
  }

  /** Starts observing a call of `method` that came in by `protocol` (REST: on `route`, its template); see observe. */
  begin(method: DescMethod, protocol: RpcProtocol, req: NodeRequest, route = ""): ObservedCall {
    const meter = this.#metrics.begin(method, protocol, route);
    const values = createContextValues();
    const sent = req.headers[requestIdHeader];
    values.set(requestIdKey, requestIdOf(typeof sent === "string" ? sent : null));
    // Who and how, for the audit log: the client's address (decided in one place) and the protocol family.
    values.set(clientAddressKey, clientAddress(req));
    values.set(protocolKey, protocol === "grpc_web" ? "grpc-web" : protocol);
    const log = this.#log.isLevelEnabled("info") ? this.#log : undefined;
    if (!tracingEnabled()) return new Call(meter, values, method, protocol, route, log, undefined);
    const parent = contextFromHeaders(req.headers);
    // The name and the attributes are made once per method and way in, and
    // given only to a span that records: the SDK's standard samplers decide
    // without them, and it would copy and check them twice for each span
    // started with them, sampled or not (an unsampled call costs one
    // non-recording span, nothing more).
    const start = this.#startOf(method, protocol, req, route);
    const span = tracer.startSpan(start.name, serverSpan, parent);
    if (span.isRecording()) span.setAttributes(spanAttributes(start, req));
    // Handed down explicitly (requestContext → Scope.trace), not made active: see startTracing's `asyncContext`.
    values.set(traceKey, withCallSpan(parent, span));
    return new Call(meter, values, method, protocol, route, log, span);
  }

  readonly #starts = new Map<DescMethod, Map<string, SpanStart>>();

  #startOf(method: DescMethod, protocol: RpcProtocol, req: NodeRequest, route: string): SpanStart {
    let byWay = this.#starts.get(method);
    if (byWay === undefined) this.#starts.set(method, (byWay = new Map()));
    // REST routes name their HTTP method, but a method a route refuses is counted under the route's label.
    const key = route === "" ? protocol : `${protocol} ${req.method ?? "GET"} ${route}`;
    let start = byWay.get(key);
    if (start === undefined) {
      start = { name: `${method.parent.typeName}/${method.name}`, attributes: startAttributes(method, protocol, req, route) };
      byWay.set(key, start);
    }
    return start;
  }
}

const serverSpan: SpanOptions = { kind: SpanKind.SERVER };

/** A call's server span's name and first attributes: the same for every call of one method that came in one way. */
interface SpanStart {
  readonly name: string;
  readonly attributes: Attributes;
}

class Call implements ObservedCall {
  readonly #meter: CallMeter;
  readonly #start = performance.now();
  #code: Code | 0 | undefined;
  #ended = false;

  constructor(
    meter: CallMeter,
    readonly values: ContextValues,
    readonly method: DescMethod,
    readonly protocol: RpcProtocol,
    readonly route: string,
    readonly log: Logger | undefined,
    readonly span: Span | undefined,
  ) {
    this.#meter = meter;
  }

  received(bytes: number): void {
    this.#meter.received(bytes);
  }

  sent(bytes: number): void {
    this.#meter.sent(bytes);
  }

  code(code: Code | 0): void {
    this.#meter.code(code);
    if (this.#code === undefined) this.#code = code;
  }

  get coded(): boolean {
    return this.#meter.coded;
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#meter.end();
    const code = this.#code ?? Code.Unknown;
    if (this.span !== undefined) endSpan(this.span, this.protocol, code);
    if (this.log === undefined) return;
    const principal = this.values.get(principalKey);
    const ids = this.span?.spanContext();
    this.log.info(
      {
        rpc: `${this.method.parent.typeName}/${this.method.name}`,
        protocol: this.protocol,
        ...(this.route !== "" && { route: this.route }),
        code: code === 0 ? "ok" : (Code[code] ?? "Unknown"),
        ms: Math.round((performance.now() - this.#start) * 100) / 100,
        request_id: this.values.get(requestIdKey),
        ...(ids !== undefined && { trace_id: ids.traceId, span_id: ids.spanId }),
        tenant: principal?.tenant,
        // Which credential called (kind:id), never the credential itself.
        credential: principal === undefined ? undefined : credentialName(principal.credential),
      },
      "rpc",
    );
  }
}

/**
 * The call's attributes that depend only on its method and the way it came
 * in (the SDK copies them into each span). Those that would be the same on
 * every span of every call — `network.transport` (tcp) and
 * `network.protocol.name` (http) — are left out: each attribute is checked,
 * copied and serialised anew for every span.
 */
function startAttributes(method: DescMethod, protocol: RpcProtocol, req: NodeRequest, route: string): Attributes {
  const attributes: Attributes = {
    "rpc.service": method.parent.typeName,
    "rpc.method": method.name,
    "anvil.protocol": protocol,
  };
  // REST calls are HTTP calls transcoded to an RPC: they carry the route, not an RPC system.
  if (protocol === "grpc" || protocol === "grpc_web") attributes["rpc.system"] = "grpc";
  else if (protocol === "connect") attributes["rpc.system"] = "connect_rpc";
  else {
    attributes["http.request.method"] = req.method ?? "GET";
    attributes["http.route"] = route.slice(route.indexOf(" ") + 1);
  }
  return attributes;
}

// A recording span's first attributes by connection, then by method and way
// in: the HTTP version and the addresses are the same for every call on a
// connection (HTTP/1.1 keep-alive, HTTP/2 multiplexing), so they are read
// and merged with the method's once per connection and method, not once per
// call.
const connectionSpanAttributes = new WeakMap<object, Map<SpanStart, Attributes>>();

/** The method's attributes (`start`), the HTTP version and the addresses of the call's connection. */
function spanAttributes(start: SpanStart, req: NodeRequest): Attributes {
  // HTTP/2's req.socket is a proxy made anew for each stream: its session is the connection.
  const connection = ("stream" in req ? req.stream.session : req.socket) ?? undefined;
  let byStart = connection === undefined ? undefined : connectionSpanAttributes.get(connection);
  let attributes = byStart?.get(start);
  if (attributes !== undefined) return attributes;
  const socket = req.socket ?? undefined;
  attributes = { ...start.attributes, "network.protocol.version": req.httpVersion === "2.0" ? "2" : req.httpVersion };
  if (socket?.localAddress !== undefined) attributes["server.address"] = socket.localAddress;
  if (socket?.localPort !== undefined) attributes["server.port"] = socket.localPort;
  if (socket?.remoteAddress !== undefined) attributes["network.peer.address"] = socket.remoteAddress;
  if (socket?.remotePort !== undefined) attributes["network.peer.port"] = socket.remotePort;
  if (connection !== undefined) {
    if (byStart === undefined) connectionSpanAttributes.set(connection, (byStart = new Map()));
    byStart.set(start, attributes);
  }
  return attributes;
}

// The codes semantic conventions count as a server's failure; the others
// (NOT_FOUND, PERMISSION_DENIED…) are the caller's, and leave the status unset.
const serverErrors = new Set<Code>([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

function endSpan(span: Span, protocol: RpcProtocol, code: Code | 0): void {
  if (protocol === "grpc" || protocol === "grpc_web") span.setAttribute("rpc.grpc.status_code", code);
  else if (code !== 0) span.setAttribute("rpc.connect_rpc.error_code", connectErrorCode(code));
  if (code !== 0 && serverErrors.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: Code[code] });
  span.end();
}
