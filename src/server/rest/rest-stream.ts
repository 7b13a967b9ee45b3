import { once } from "node:events";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import { encodeEnvelope, pipe, transformSplitEnvelope, type UniversalHandler } from "@connectrpc/connect/protocol";
import { errorFromJson } from "@connectrpc/connect/protocol-connect";
import type { NodeRequest, NodeResponse } from "../connect-handler.js";
import { requestIdHeader } from "../../rpc/request-id-interceptor.js";
import type { CallMeter } from "../../metrics/rpc-metrics.js";
import { sendRestError } from "./rest-errors.js";
import type { RestRoute } from "./rest-routes.js";

const endStreamFlag = 0b00000010;
/** Request headers a streamed REST call passes on to the RPC: who calls, and what identifies the call. */
const passedHeaders = ["authorization", "x-api-key", "user-agent", "traceparent", requestIdHeader, "connect-timeout-ms"];

/**
 * Whether REST serves `route` as JSON Lines: a server-streaming method whose
 * route names a repeated `response_body` (`ExportAuditEvents`: `events`).
 * Other streams have no REST form (UNIMPLEMENTED).
 */
export function servedAsJsonLines(route: RestRoute): boolean {
  return route.method.methodKind === "server_streaming" && route.responseBody?.fieldKind === "list";
}

/**
 * Serves a server stream over REST as `application/x-ndjson`: one line per
 * item of each message's `response_body` list. The call runs through
 * connect's own handler for the method (Connect protocol, JSON), so the
 * very interceptor chain an RPC call reaches decides it. Each message is
 * written as it comes, waiting for the socket to drain, so a stream of any
 * length holds one message at a time. An error before the first line is a
 * REST error answer; after it, a last line `{"error": {code, message}}`.
 */
export async function serveJsonLines(
  req: NodeRequest,
  res: NodeResponse,
  route: RestRoute,
  input: JsonObject,
  handler: UniversalHandler,
  values: ContextValues,
  compressMinBytes: number,
  meter: CallMeter,
): Promise<void> {
  const header = new Headers({ "content-type": "application/connect+json" });
  for (const name of passedHeaders) {
    const value = req.headers[name];
    if (typeof value === "string") header.set(name, value);
  }
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableEnded) abort.abort(new ConnectError("client disconnected", Code.Canceled));
  };
  res.once("close", onClose);
  try {
    const uRes = await handler({
      // Stryker disable next-line StringLiteral: equivalent: connect reads the HTTP version only to refuse bidi streams over HTTP/1.1, and JSON Lines serves server streams only
      httpVersion: "1.1",
      method: "POST",
      // Stryker disable next-line StringLiteral: equivalent: connect reads a POST's URL only into the call's context (HandlerContext.url), which nothing in Anvil reads
      url: `http://localhost${handler.requestPath}`,
      header,
      body: (async function* () {
        yield encodeEnvelope(0, new TextEncoder().encode(JSON.stringify(input)));
      })(),
      signal: abort.signal,
      contextValues: values,
    });
    const field = route.responseBody!.jsonName;
    const requestId = new Headers(uRes.header).get(requestIdHeader);
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      res.writeHead(200, { "content-type": "application/x-ndjson", ...(requestId && { [requestIdHeader]: requestId }) });
    };
    if (uRes.body === undefined || uRes.body instanceof Uint8Array || uRes.status !== 200) {
      throw new ConnectError(`stream answered with status ${uRes.status}`, Code.Internal);
    }
    // propagateDownStreamError: leaving the loop (the client left while a line waited to be written) returns connect's
    // response body, which ends the call's implementation; without it the implementation stays suspended at its yield.
    for await (const envelope of pipe(uRes.body as AsyncIterable<Uint8Array>, transformSplitEnvelope(0x7fffffff), { propagateDownStreamError: true })) {
      const json = JSON.parse(new TextDecoder().decode(envelope.data)) as JsonObject;
      if ((envelope.flags & endStreamFlag) === endStreamFlag) {
        const end = json as { error?: JsonValue; metadata?: Record<string, string[]> };
        if (end.error === undefined) break;
        const error = errorFromJson(end.error, new Headers(), new ConnectError("stream failed", Code.Unknown));
        meter.code(error.code);
        if (!started) {
          // The request id the call answered with: in its trailers, else in its headers.
          res.setHeader(requestIdHeader, end.metadata?.[requestIdHeader]?.[0] ?? requestId ?? "");
          meter.sent(await sendRestError(req, res, error, compressMinBytes));
        } else {
          await write(res, `${JSON.stringify({ error: { code: Code[error.code], message: error.rawMessage } })}\n`);
          res.end();
        }
        return;
      }
      start();
      const items = (json[field] ?? []) as JsonValue[];
      if (items.length === 0) continue;
      const lines = `${items.map((item) => JSON.stringify(item)).join("\n")}\n`;
      meter.sent(Buffer.byteLength(lines));
      await write(res, lines);
    }
    start();
    meter.code(0);
    res.end();
  } finally {
    res.off("close", onClose);
  }
}

/** Writes `text`, waiting for the socket to drain when its buffer is full (or for the client to leave). */
async function write(res: NodeResponse, text: string): Promise<void> {
  if ((res as { write(chunk: string): boolean }).write(text)) return;
  if (res.destroyed) throw new ConnectError("client disconnected", Code.Canceled);
  await Promise.race([once(res as NodeJS.EventEmitter, "drain"), once(res as NodeJS.EventEmitter, "close")]);
  if (res.destroyed) throw new ConnectError("client disconnected", Code.Canceled);
}
