import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import { maxTimerMs } from "../shared/timer-limit.js";

/**
 * Rewrites a `grpc-timeout` or `connect-timeout-ms` header beyond what a
 * timer can wait (see timer-limit.ts) to that limit, before connect's
 * universal handler arms its deadline timer from it: that timer would
 * otherwise fire at once and end a call with a 115-day deadline as
 * DEADLINE_EXCEEDED within a millisecond. Malformed values are left for
 * connect to refuse.
 */
export function clampDeadlineHeaders(header: Headers): void {
  const grpc = header.get("grpc-timeout");
  if (grpc !== null && (parseGrpcTimeout(grpc, Number.MAX_SAFE_INTEGER).timeoutMs ?? 0) > maxTimerMs) {
    // grpc-timeout allows eight digits: whole seconds fit, milliseconds do not.
    header.set("grpc-timeout", `${Math.floor(maxTimerMs / 1000)}S`);
  }
  const connect = header.get("connect-timeout-ms");
  if (connect !== null && (parseConnectTimeout(connect, Number.MAX_SAFE_INTEGER).timeoutMs ?? 0) > maxTimerMs) {
    header.set("connect-timeout-ms", String(maxTimerMs));
  }
}
