import { create, type DescMethodUnary, type DescService, isMessage, type Message } from "@bufbuild/protobuf";
import {
  type ContextValues,
  createContextValues,
  type HandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";

/** A method implementation as registered on the router (already bound to its service object). */
export type UnaryImpl = (message: Message, ctx: HandlerContext) => unknown;

/** What one call needs that the protocol layer determines. */
export interface CallInit {
  readonly requestMethod: string;
  readonly url: string;
  readonly protocolName: string;
  readonly requestHeader: Headers;
  readonly responseHeader: Headers;
  readonly responseTrailer: Headers;
  /** The call's abort signal, created on first use (see LazyAbort). */
  readonly abort: { readonly signal: AbortSignal };
  readonly timeoutMs: number | undefined;
  /** The call's context values when the transport already set some (the authentication it decided before the body). */
  readonly contextValues?: ContextValues;
}

const kContext = Symbol("anvil.handler-context");

type AnyUnaryFn = (req: UnaryRequest) => Promise<UnaryResponse>;

/** One call of a unary method through its interceptors: what composeUnaryCall returns. */
export type UnaryCall = (init: CallInit, input: Message) => Promise<UnaryResponse>;

/**
 * Composes the interceptors around one method's implementation once, at
 * start-up — connect composes them anew on every call — and returns a
 * function running one call: the same interceptor contract (requests and
 * responses with the same fields, outermost interceptor first), the same
 * HandlerContext for the implementation, the same normalization of its
 * result.
 */
export function composeUnaryCall(
  service: DescService,
  method: DescMethodUnary,
  impl: UnaryImpl,
  interceptors: readonly Interceptor[],
): UnaryCall {
  const inner: AnyUnaryFn = async (req) => {
    const ctx = (req as unknown as Record<symbol, HandlerContext>)[kContext] as HandlerContext;
    // An interceptor may have replaced the request's headers, signal or values.
    // (Looking at the signal through its getter would create it; a getter
    // still in place means nobody replaced it.)
    const signalKept = Object.getOwnPropertyDescriptor(req, "signal")?.get !== undefined || req.signal === ctx.signal;
    const merged =
      req.header === ctx.requestHeader && signalKept && req.contextValues === ctx.values
        ? ctx
        : { ...ctx, service: req.service, requestHeader: req.header, signal: req.signal, values: req.contextValues };
    const output = await impl(req.message, merged);
    return {
      stream: false,
      service,
      method,
      message: isMessage(output, method.output) ? output : create(method.output, output as never),
      header: ctx.responseHeader,
      trailer: ctx.responseTrailer,
    } as UnaryResponse;
  };
  const chain = interceptors.reduceRight<AnyUnaryFn>((next, interceptor) => interceptor(next as never) as AnyUnaryFn, inner);
  return async (init, input) => {
    const values: ContextValues = init.contextValues ?? createContextValues();
    const deadline = init.timeoutMs === undefined ? undefined : Date.now() + init.timeoutMs;
    const ctx: HandlerContext = {
      method,
      service,
      requestMethod: init.requestMethod,
      url: init.url,
      protocolName: init.protocolName,
      get signal() {
        return init.abort.signal;
      },
      timeoutMs: deadline === undefined ? () => undefined : () => deadline - Date.now(),
      requestHeader: init.requestHeader,
      responseHeader: init.responseHeader,
      responseTrailer: init.responseTrailer,
      values,
    };
    const res = await chain({
      stream: false,
      message: input,
      method,
      service,
      requestMethod: init.requestMethod,
      url: init.url,
      get signal() {
        return init.abort.signal;
      },
      header: init.requestHeader,
      contextValues: values,
      [kContext]: ctx,
    } as unknown as UnaryRequest);
    // As connect does: headers and trailers an interceptor returned replace the context's.
    if (res.header !== init.responseHeader) replaceHeaders(res.header, init.responseHeader);
    if (res.trailer !== init.responseTrailer) replaceHeaders(res.trailer, init.responseTrailer);
    return res;
  };
}

function replaceHeaders(from: Headers, to: Headers): void {
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => to.append(key, value));
}
