import type http2 from "node:http2";
import type { Call, Reply } from "../protocol/calls.js";
import { sendH2 } from "../protocol/client.js";

/** One checked request: the reply, and what is wrong with it (undefined when right). */
export interface CheckedReply {
  readonly reply: Reply | undefined;
  readonly problem: string | undefined;
  readonly ms: number;
}

/**
 * Sends one `call` on an HTTP/2 session, with a fresh body when the call
 * needs one, and checks the whole answer (status, grpc-status trailer,
 * decoded message) with the call's own verify(). A failed or unanswered
 * stream is a problem, never a throw, so load loops just count it.
 */
export async function checkedH2Request(session: http2.ClientHttp2Session, call: Call, timeoutMs = 10_000): Promise<CheckedReply> {
  const t0 = performance.now();
  try {
    const reply = await sendH2(session, call, call.body(), timeoutMs);
    return { reply, problem: call.verify(reply), ms: performance.now() - t0 };
  } catch (err) {
    return { reply: undefined, problem: err instanceof Error ? err.message : String(err), ms: performance.now() - t0 };
  }
}
