import { create, fromJson, type JsonObject, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-connect";
import { authOutcomeKey, type CallAuthenticator } from "../../rpc/call-authenticator.js";
import { toConnectError } from "../../rpc/error-mapping.js";
import { clampTimerMs } from "../../shared/timer-limit.js";
import type { CallMeter } from "../../metrics/rpc-metrics.js";
import type { ObservedCall } from "../call-observer.js";
import type { NodeRequest, NodeResponse } from "../connect-handler.js";
import { RequestHeaders } from "../fast-unary/request-headers.js";
import { takeQueryCredential } from "../query-credential.js";
import type { PathBindings } from "../rest/path-template.js";
import { errorStatus, sendRestError } from "../rest/rest-errors.js";
import type { RestRoute } from "../rest/rest-routes.js";
import { transcodeRequest } from "../rest/transcode.js";
import type { ServerStreamCall } from "../stream-call.js";
import { formatSseFrame, type SseBinding } from "./event-stream.js";

/** What serveEventStream needs besides the request. */
export interface EventStreamOptions {
  readonly route: RestRoute;
  readonly bindings: PathBindings;
  readonly call: ServerStreamCall;
  readonly binding: SseBinding;
  readonly authenticator: CallAuthenticator;
  readonly compressMinBytes: number;
  /** The call's observation (metrics, span, access-log line); its context values go to the interceptors. */
  readonly meter: ObservedCall;
}

/**
 * Serves a server-streaming method's GET route as `text/event-stream`
 * (what browsers' `EventSource` reads): the request is transcoded like any
 * REST call, the call runs through the RPC interceptor chain, and each
 * response message is written as one event once the client took the
 * previous one (the stream is pulled, never buffered). Errors before the
 * first message are answered with their HTTP status and JSON body, like
 * REST; after it, the stream ends with a comment naming the error, and the
 * client reconnects with `Last-Event-ID` (which takes precedence over the
 * query's resume field, since EventSource reconnects to the same URL).
 * The credential may come as an `access_token` query parameter, which
 * nothing logs.
 */
export async function serveEventStream(req: NodeRequest, res: NodeResponse, options: EventStreamOptions): Promise<void> {
  const { route, meter } = options;
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableEnded) abort.abort(new ConnectError("client disconnected", Code.Canceled));
  };
  res.once("close", onClose);
  let messages: AsyncIterator<Message> | undefined;
  let headersSent = false;
  try {
    const credential = takeQueryCredential(req.url ?? "/", req.headers, ["access_token"]);
    const requestHeader = new RequestHeaders(credential.headers);
    const auth = await options.authenticator.decide(route.method, requestHeader, req.socket?.remoteAddress);
    // As on REST: a refused caller's path and query are not looked at; the chain refuses the call first.
    const input = "refused" in auth ? create(route.method.input) : readInput(req, options, credential.query);
    const timeoutHeader = req.headers["connect-timeout-ms"];
    const timeout = parseTimeout(typeof timeoutHeader === "string" ? timeoutHeader : null, Number.MAX_SAFE_INTEGER);
    if (timeout.error) throw timeout.error;
    const values = meter.values;
    values.set(authOutcomeKey, auth);
    messages = options.call(
      {
        requestMethod: "GET",
        url: credential.redactedUrl,
        protocolName: "sse",
        requestHeader,
        signal: abort.signal,
        timeoutMs: clampTimerMs(timeout.timeoutMs),
        contextValues: values,
      },
      input,
    )[Symbol.asyncIterator]();
    const first = await messages.next();
    if (first.done === true || options.binding.exhausted(first.value, input)) {
      // Nothing to send, now or later: 204 tells EventSource to stop reconnecting.
      while (!(await messages.next()).done);
      meter.code(0);
      res.writeHead(204);
      res.end();
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      // Reverse proxies (nginx) pass each event on at once instead of buffering the response.
      "x-accel-buffering": "no",
    });
    headersSent = true;
    await write(res, formatSseFrame(options.binding.frame(first.value)), meter);
    for (let next = await messages.next(); next.done !== true; next = await messages.next()) {
      await write(res, formatSseFrame(options.binding.frame(next.value)), meter);
    }
    meter.code(0);
    res.end();
  } catch (err) {
    const error = err instanceof ConnectError ? err : toConnectError(err, "");
    meter.code(abort.signal.aborted ? Code.Canceled : error.code);
    if (abort.signal.aborted || res.destroyed) return;
    if (!headersSent) {
      error.metadata.forEach((value, name) => res.setHeader(name, value));
      meter.sent(await sendRestError(req, res, error, options.compressMinBytes, errorStatus(error)));
      return;
    }
    // The stream was cut short (the instance drains, the deadline passed): say why, then end, and the client resumes.
    await write(res, formatSseFrame({ comment: `end ${Code[error.code]}: ${error.rawMessage}` }), meter).catch(() => undefined);
    res.end();
  } finally {
    res.off("close", onClose);
    // A client that left: the call's finalizers (slot release, access log) run now.
    await messages?.return?.().catch(() => undefined);
  }
}

/** The request message from the path, the query and `Last-Event-ID`. */
function readInput(req: NodeRequest, options: EventStreamOptions, query: URLSearchParams): Message {
  const json: JsonObject = transcodeRequest(options.route, options.bindings, query, "");
  const lastEventId = req.headers["last-event-id"];
  if (typeof lastEventId === "string" && lastEventId !== "") {
    if (!/^\d{1,19}$/.test(lastEventId.trim())) {
      throw new ConnectError(`Last-Event-ID must be the sequence of an event, not ${JSON.stringify(lastEventId.slice(0, 40))}`, Code.InvalidArgument);
    }
    json[options.binding.resumeField] = lastEventId.trim();
  }
  try {
    return fromJson(options.route.method.input, json);
  } catch (err) {
    throw ConnectError.from(err, Code.InvalidArgument);
  }
}

/** Writes one frame; waits until the client took it when the socket's buffer is full (so a slow client holds one event, not all). */
function write(res: NodeResponse, text: string, meter: CallMeter): Promise<void> {
  const bytes = Buffer.from(text, "utf8");
  meter.sent(bytes.byteLength);
  return new Promise((resolve, reject) => {
    if (res.destroyed) return reject(new ConnectError("client disconnected", Code.Canceled));
    const ok = (res as NodeJS.WritableStream).write(bytes);
    if (ok) return resolve();
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      if (res.destroyed && !res.writableFinished) reject(new ConnectError("client disconnected", Code.Canceled));
      else resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
