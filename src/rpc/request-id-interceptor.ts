import { randomUUID } from "node:crypto";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { requestIdKey } from "./request-context.js";

/** The response header (and error metadata) carrying a call's correlation id. */
export const requestIdHeader = "x-request-id";
const header = requestIdHeader;
// A client-supplied id is echoed and logged, so it must be short and inert.
const acceptable = /^[A-Za-z0-9._:-]{1,128}$/;

/** A call's correlation id: the client's `x-request-id` when it is sane, a fresh UUID otherwise. */
export function requestIdOf(sent: string | null): string {
  return sent !== null && acceptable.test(sent) ? sent : randomUUID();
}

/**
 * Gives every call a correlation id — the client's `x-request-id` when it
 * sent a sane one, a fresh UUID otherwise — and echoes it on the response,
 * errors included.
 */
export function requestIdInterceptor(): Interceptor {
  return (next) => async (req) => {
    // The transport may have given the call its id already (to log a call
    // refused before the interceptors); a fresh UUID is not drawn twice.
    let id = req.contextValues.get(requestIdKey);
    if (id === "") {
      id = requestIdOf(req.header.get(header));
      req.contextValues.set(requestIdKey, id);
    }
    try {
      const res = await next(req);
      res.header.set(header, id);
      return res;
    } catch (err) {
      if (err instanceof ConnectError) err.metadata.set(header, id);
      throw err;
    }
  };
}
