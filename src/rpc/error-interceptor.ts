import { Code, ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import type { Logger } from "pino";
import { toConnectError } from "./error-mapping.js";
import { requestIdKey } from "./request-context.js";

/**
 * Maps whatever the layers below threw — before the first response message
 * or in the middle of a response stream — to a ConnectError, in one place.
 * Internal errors are logged here with their cause; the client sees only the
 * correlation id.
 */
export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const map = (err: unknown): ConnectError => {
      const requestId = req.contextValues.get(requestIdKey);
      const mapped = toConnectError(err, requestId);
      if (mapped.code === Code.Internal) {
        // The method, not the URL: a REST URL carries the query string, and a query may carry a credential.
        log.error({ err: mapped.cause ?? err, rpc: `${req.service.typeName}/${req.method.name}`, request_id: requestId }, "internal error");
      }
      return mapped;
    };
    let res;
    try {
      res = await next(req);
    } catch (err) {
      throw map(err);
    }
    if (!res.stream) return res;
    const messages = res.message;
    const stream: StreamResponse = {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } catch (err) {
          throw map(err);
        }
      })(),
    } as StreamResponse;
    return stream as typeof res;
  };
}
