import { Code } from "@connectrpc/connect";
import { type Context, context, createContextKey, propagation, ROOT_CONTEXT, type Span, trace, type Tracer } from "@opentelemetry/api";

/**
 * Anvil's tracer. Until startTracing() registers the SDK this is the API's
 * no-op tracer; code on a hot path checks tracingEnabled() first and does no
 * tracing work at all.
 */
export const tracer: Tracer = trace.getTracer("anvil");

let enabled = false;

/** Whether spans are recorded and exported (startTracing found an OTLP endpoint). */
export function tracingEnabled(): boolean {
  return enabled;
}

/** How a process carries its trace context from a span to the work below it. */
export interface TracingOptions {
  /**
   * Register the SDK's AsyncLocalStorage context manager, so the active span
   * follows every await (`context.active()`, `startActiveSpan`). The
   * reference worker does. The gateway does not: once any AsyncLocalStorage
   * is entered, Node 20 runs a hook on every promise of the process, and a
   * point read makes about 90 — 13% more CPU per call, traced or not. It
   * passes each call's context explicitly instead (Scope.trace).
   */
  readonly asyncContext?: boolean;
}

/** A started tracing SDK: flush and stop it before the process exits. */
export interface TracingHandle {
  shutdown(): Promise<void>;
}

/**
 * Whether the environment asks for traces: an OTLP endpoint
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`),
 * unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
 */
export function tracingWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? "otlp").split(",").map((e) => e.trim().toLowerCase());
  if (!exporters.includes("otlp")) return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/**
 * Starts the OpenTelemetry SDK when the environment asks for traces (see
 * tracingWanted), exporting OTLP over HTTP/protobuf. The SDK is only loaded
 * then: without an endpoint the process runs on the API's no-op
 * implementation. Everything else follows the standard `OTEL_*` variables,
 * read by the SDK itself: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
 * (the resource), `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`,
 * `_TIMEOUT`, `_COMPRESSION`, and the batch processor's `OTEL_BSP_*`.
 *
 * @example
 *   const tracing = await startTracing("anvil");
 *   // … serve …
 *   await tracing?.shutdown();
 */
export async function startTracing(
  defaultServiceName: string,
  env: NodeJS.ProcessEnv = process.env,
  options: TracingOptions = {},
): Promise<TracingHandle | undefined> {
  if (!tracingWanted(env)) return undefined;
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { defaultResource, detectResources, envDetector, resourceFromAttributes }] =
    await Promise.all([
      import("@opentelemetry/sdk-trace-node"),
      import("@opentelemetry/exporter-trace-otlp-proto"),
      import("@opentelemetry/resources"),
    ]);
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the default name.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": defaultServiceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  // The W3C trace-context propagator, and the async-hooks context manager only where asked for (see TracingOptions).
  provider.register(options.asyncContext === true ? {} : { contextManager: null });
  enabled = true;
  return {
    shutdown: async () => {
      enabled = false;
      await provider.shutdown();
    },
  };
}

/** Reads a header from Node's (lower-cased) incoming headers. */
const nodeHeaderGetter = {
  keys: (carrier: NodeJS.Dict<string | string[]>) => Object.keys(carrier),
  get: (carrier: NodeJS.Dict<string | string[]>, key: string) => carrier[key],
};

/** The remote parent a request names in `traceparent`/`tracestate` (gRPC metadata and HTTP headers alike). */
export function contextFromHeaders(headers: NodeJS.Dict<string | string[]>): Context {
  return propagation.extract(ROOT_CONTEXT, headers, nodeHeaderGetter);
}

/**
 * The W3C `traceparent` of `span` (or of the active span), to store with
 * work that continues later or elsewhere; undefined when tracing is off.
 */
export function traceParentOf(span: Span | undefined = trace.getActiveSpan()): string | undefined {
  if (!enabled || span === undefined) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier);
  return carrier.traceparent;
}

/** The context a stored `traceparent` names, to continue its trace. */
export function contextFromTraceParent(traceParent: string | undefined): Context {
  if (!traceParent) return context.active();
  return propagation.extract(context.active(), { traceparent: traceParent });
}

// The server span of the call a context belongs to, beside the active span
// (which deeper down is a transaction's or a statement's).
const callSpanKey = createContextKey("anvil.call-span");

/** `parent` with `span` as the active span and as the call's server span. */
export function withCallSpan(parent: Context, span: Span): Context {
  return trace.setSpan(parent, span).setValue(callSpanKey, span);
}

/** The server span of the call whose context (a Scope's `trace`) this is. */
function callSpanOf(callContext: Context | undefined): Span | undefined {
  return callContext?.getValue(callSpanKey) as Span | undefined;
}

/**
 * The `traceparent` of the server span of the call `callContext` belongs
 * to (a Scope's `trace`): what an operation stores so that its tasks, wherever they run,
 * join the trace of the call that started it. Undefined when tracing is off
 * or outside a call.
 */
export function callTraceParent(callContext: Context | undefined): string | undefined {
  const span = callSpanOf(callContext);
  return span === undefined ? undefined : traceParentOf(span);
}

/** A code as Connect spells it on the wire (`not_found`): the value of `rpc.connect_rpc.error_code`. */
export function connectErrorCode(code: Code): string {
  return (Code[code] ?? "Unknown").replace(/[A-Z]/g, (c, i: number) => (i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`));
}

/**
 * Links the span of the call `callContext` belongs to (a Scope's `trace`) to the traces
 * these stored `traceparent`s name: a ClaimTask call, traced on its own,
 * points at the operations whose tasks it handed out. Does nothing while
 * tracing is off or for a call the sampler left out.
 */
export function linkCallTo(callContext: Context | undefined, traceParents: readonly (string | null)[]): void {
  if (!enabled) return;
  const span = callSpanOf(callContext);
  if (span === undefined || !span.isRecording()) return;
  for (const traceParent of traceParents) {
    if (!traceParent) continue;
    const linked = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, { traceparent: traceParent }));
    if (linked !== undefined) span.addLink({ context: linked });
  }
}
