import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { connectErrorCode, tracer, tracingEnabled } from "./tracing.js";

/**
 * A client interceptor that traces each call as a client span named
 * `package.Service/Method`, child of the active span, and sends the W3C
 * `traceparent` (and `tracestate`) with it so that the server's span joins
 * the trace. Does nothing while tracing is off.
 *
 * @example
 *   createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [clientTracingInterceptor()] })
 */
export function clientTracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (!tracingEnabled()) return next(req);
    const span = tracer.startSpan(`${req.service.typeName}/${req.method.name}`, {
      kind: SpanKind.CLIENT,
      attributes: { "rpc.system": "connect_rpc", "rpc.service": req.service.typeName, "rpc.method": req.method.name },
    });
    const ctx = trace.setSpan(context.active(), span);
    propagation.inject(ctx, req.header, { set: (headers, key, value) => headers.set(key, value) });
    try {
      const res = await context.with(ctx, () => next(req));
      span.end();
      return res;
    } catch (err) {
      const code = ConnectError.from(err).code;
      span.setAttribute("rpc.connect_rpc.error_code", connectErrorCode(code));
      span.setStatus({ code: SpanStatusCode.ERROR, message: Code[code] });
      span.end();
      throw err;
    }
  };
}
