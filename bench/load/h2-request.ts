import http2 from "node:http2";
import type { Call, Reply } from "../protocol/calls.js";

/** One checked request: the reply, and what is wrong with it (undefined when right). */
export interface CheckedReply {
  readonly reply: Reply | undefined;
  readonly problem: string | undefined;
  readonly ms: number;
}

/**
 * Sends one `call` on an HTTP/2 session, with a fresh body when the call
 * needs one, and checks the whole answer (status, grpc-status trailer,
 * decoded message) with the call's own verify().
 */
export function checkedH2Request(session: http2.ClientHttp2Session, call: Call): Promise<CheckedReply> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const body = call.body();
    const stream = session.request({ ":method": call.method, ":path": call.path, ...call.headers }, { endStream: body === undefined });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    let failure: string | undefined;
    const chunks: Buffer[] = [];
    stream.setTimeout(10_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", (e) => (failure ??= String(e)));
    stream.on("close", () => {
      const ms = performance.now() - t0;
      const status = Number(headers[":status"] ?? 0);
      if (status === 0) return resolve({ reply: undefined, problem: failure ?? `no response (rst ${stream.rstCode})`, ms });
      const reply: Reply = { status, headers, trailers, body: Buffer.concat(chunks) };
      resolve({ reply, problem: call.verify(reply), ms });
    });
    if (body !== undefined) stream.end(body);
  });
}
