import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { principalKey, requestIdKey } from "./request-context.js";

/** Logs one line per unary call: method, outcome code, duration, caller. */
export function loggingInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    if (!log.isLevelEnabled("info")) return next(req);
    const start = performance.now();
    let code = "ok";
    try {
      return await next(req);
    } catch (err) {
      code = Code[ConnectError.from(err).code] ?? "unknown";
      throw err;
    } finally {
      log.info(
        {
          rpc: `${req.service.typeName}/${req.method.name}`,
          code,
          ms: Math.round((performance.now() - start) * 100) / 100,
          request_id: req.contextValues.get(requestIdKey),
          tenant: req.contextValues.get(principalKey)?.tenant,
        },
        "rpc",
      );
    }
  };
}
