import { ConnectError, createContextKey, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import type { CallMeter } from "../metrics/rpc-metrics.js";

/**
 * The meter of a call served by connect's universal handler, which answers
 * in its own framing: only an interceptor sees the call's final code there
 * (for a stream, when it ends). The fast unary path and REST learn the code
 * from the error they catch, and leave this unset.
 */
export const callMeterKey = createContextKey<CallMeter | undefined>(undefined, { description: "the call's metrics meter" });

/** Tells the call's meter (when it has one) the code it ended with. */
export function metricsInterceptor(): Interceptor {
  return (next) => async (req) => {
    const meter = req.contextValues.get(callMeterKey);
    if (meter === undefined) return next(req);
    let res;
    try {
      res = await next(req);
    } catch (err) {
      meter.code(ConnectError.from(err).code);
      throw err;
    }
    if (!res.stream) {
      meter.code(0);
      return res;
    }
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
          meter.code(0);
        } catch (err) {
          meter.code(ConnectError.from(err).code);
          throw err;
        }
      })(),
    } as StreamResponse as typeof res;
  };
}
