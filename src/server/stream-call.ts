import type { DescMethod, DescMethodClientStreaming, DescMethodServerStreaming, Message } from "@bufbuild/protobuf";
import { type ContextValues, createHandlerContext, createMethodImplSpec, type Interceptor, type MethodImpl } from "@connectrpc/connect";
import { createAsyncIterable, transformInvokeImplementation } from "@connectrpc/connect/protocol";

/** What one server-streaming call needs that its transport (SSE, WebSocket) determines. */
export interface StreamCallInit {
  readonly requestMethod: string;
  /** The request URL as interceptors (and their logs) see it: credentials in the query already redacted. */
  readonly url: string;
  /** Shown to interceptors as the protocol name, e.g. `sse`, `websocket`. */
  readonly protocolName: string;
  readonly requestHeader: Headers;
  /** Aborts when the client leaves. */
  readonly signal: AbortSignal;
  readonly timeoutMs?: number | undefined;
  /** The call's context values, with the authentication the transport decided (authOutcomeKey). */
  readonly contextValues: ContextValues;
}

/** One call of a server-streaming method through its interceptors: the response messages, in order. */
export type ServerStreamCall = (init: StreamCallInit, input: Message) => AsyncIterable<Message>;

/**
 * Runs a server-streaming implementation through the interceptor chain the
 * RPC transports use, with connect's own machinery (the one its router
 * runs per call): the same request and response objects, the same
 * HandlerContext (deadline and abort signal included), the same
 * normalisation of what the implementation yields. Transports other than
 * gRPC and Connect — server-sent events, WebSocket — call methods through
 * this, so authentication, permissions, stream caps, limits, metrics,
 * logging and error mapping apply to them exactly as to an RPC.
 */
export function composeServerStreamCall(method: DescMethodServerStreaming, impl: MethodImpl<DescMethodServerStreaming>, interceptors: readonly Interceptor[]): ServerStreamCall {
  const spec = createMethodImplSpec(method, impl);
  return (init, input) =>
    (async function* () {
      const context = contextOf(method, init);
      try {
        yield* transformInvokeImplementation(spec, context, [...interceptors])(createAsyncIterable([input]));
      } finally {
        // Clears the deadline timer and tells the implementation the call is over.
        context.abort();
      }
    })();
}

/** Whether a method is server streaming (the only kind SSE and WebSocket serve). */
export function isServerStreaming(method: DescMethod): method is DescMethodServerStreaming {
  return method.methodKind === "server_streaming";
}

/** One call of a client-streaming method through its interceptors: the single response. */
export type ClientStreamCall = (init: StreamCallInit, input: AsyncIterable<Message>) => Promise<Message>;

/**
 * Runs a client-streaming implementation through the interceptor chain, as
 * composeServerStreamCall does for server streams: the plain `PUT` of an
 * artifact upload calls WorkerService.UploadArtifact through this, its body
 * cut into the method's request messages.
 */
export function composeClientStreamCall(method: DescMethodClientStreaming, impl: MethodImpl<DescMethodClientStreaming>, interceptors: readonly Interceptor[]): ClientStreamCall {
  const spec = createMethodImplSpec(method, impl);
  return async (init, input) => {
    const context = contextOf(method, init);
    try {
      let response: Message | undefined;
      for await (const m of transformInvokeImplementation(spec, context, [...interceptors])(input)) response = m;
      if (response === undefined) throw new Error(`${method.parent.typeName}/${method.name} answered nothing`);
      return response;
    } finally {
      context.abort();
    }
  };
}

/** Whether a method is client streaming. */
export function isClientStreaming(method: DescMethod): method is DescMethodClientStreaming {
  return method.methodKind === "client_streaming";
}

/** The HandlerContext connect's router would make for this call (deadline and abort signal included). */
function contextOf(method: DescMethodServerStreaming | DescMethodClientStreaming, init: StreamCallInit) {
  return createHandlerContext({
    service: method.parent,
    method,
    protocolName: init.protocolName,
    requestMethod: init.requestMethod,
    url: init.url,
    timeoutMs: init.timeoutMs,
    requestSignal: init.signal,
    requestHeader: init.requestHeader,
    contextValues: init.contextValues,
  });
}
