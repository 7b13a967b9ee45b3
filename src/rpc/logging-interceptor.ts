import { Code, ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import type { Logger } from "pino";
import { credentialName, type Principal } from "../auth/principal.js";
import { principalKey, requestIdKey } from "./request-context.js";

/**
 * Logs one line per call: method, outcome code, duration, caller. A server
 * stream is logged when it ends, with its final code and whole duration —
 * not when its first message is ready.
 */
export function loggingInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    if (!log.isLevelEnabled("info")) return next(req);
    const start = performance.now();
    const line = (code: string) =>
      log.info(
        {
          rpc: `${req.service.typeName}/${req.method.name}`,
          code,
          ms: Math.round((performance.now() - start) * 100) / 100,
          request_id: req.contextValues.get(requestIdKey),
          tenant: req.contextValues.get(principalKey)?.tenant,
          // Which credential called (kind:id), never the credential itself.
          credential: credentialOf(req.contextValues.get(principalKey)),
        },
        "rpc",
      );
    let res;
    try {
      res = await next(req);
    } catch (err) {
      line(codeName(err));
      throw err;
    }
    if (!res.stream) {
      line("ok");
      return res;
    }
    const messages = res.message;
    const stream: StreamResponse = {
      ...res,
      message: (async function* () {
        // Stays undefined when the consumer stopped reading early: the client left.
        let code: string | undefined;
        try {
          yield* messages;
          code = "ok";
        } catch (err) {
          code = codeName(err);
          throw err;
        } finally {
          line(code ?? Code[Code.Canceled]);
        }
      })(),
    } as StreamResponse;
    return stream as typeof res;
  };
}

function codeName(err: unknown): string {
  return Code[ConnectError.from(err).code] ?? "unknown";
}

function credentialOf(principal: Principal | undefined): string | undefined {
  return principal === undefined ? undefined : credentialName(principal.credential);
}
