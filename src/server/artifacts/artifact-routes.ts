import { create, type DescMethod, type Message, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-connect";
import {
  type Artifact as ArtifactMessage,
  ArtifactSchema,
  type DownloadArtifactResponse,
  OperationService,
  type UploadArtifactResponse,
  UploadArtifactRequestSchema,
  WorkerService,
} from "../../../gen/anvil/operations/v1/operations_pb.js";
import { resolveRange } from "../../artifacts/artifact.js";
import type { RouteLabel } from "../../metrics/rpc-metrics.js";
import { authOutcomeKey, type CallAuthenticator } from "../../rpc/call-authenticator.js";
import { toConnectError } from "../../rpc/error-mapping.js";
import { clampTimerMs } from "../../shared/timer-limit.js";
import { streamingBody } from "../body-deadlines.js";
import type { CallObserver, ObservedCall } from "../call-observer.js";
import type { NodeRequest, NodeResponse, RouteHandler } from "../connect-handler.js";
import { RequestHeaders } from "../fast-unary/request-headers.js";
import { errorStatus, sendRestError } from "../rest/rest-errors.js";
import type { ClientStreamCall, ServerStreamCall } from "../stream-call.js";
import { parseByteRange, type RequestedRange } from "./byte-range.js";

/** The header carrying the lease token of a `PUT` upload (a secret: never logged, like `Authorization`). */
export const leaseTokenHeader = "anvil-lease-token";

/** Options of createArtifactRoutes. */
export interface ArtifactRoutesOptions {
  /** WorkerService.UploadArtifact through its interceptors. */
  readonly upload: ClientStreamCall;
  /** OperationService.DownloadArtifact through its interceptors. */
  readonly download: ServerStreamCall;
  readonly authenticator: CallAuthenticator;
  readonly calls: CallObserver;
  readonly compressMinBytes: number;
}

/**
 * The methods served over HTTP by these routes instead of a transcoded
 * `google.api.http` annotation: their bodies are a file's raw bytes, which
 * JSON transcoding cannot carry.
 */
export const artifactHttpMethods: ReadonlySet<DescMethod> = new Set([WorkerService.method.uploadArtifact, OperationService.method.downloadArtifact]);

const uploadPath = /^\/v1\/tasks\/([^/]+)\/artifacts\/([^/]+)$/;
const downloadPath = /^\/v1\/operations\/([^/]+)\/artifacts\/([^/]+)$/;
export const uploadRoute = "PUT /v1/tasks/{task_id}/artifacts/{name}";
export const downloadRoute = "GET /v1/operations/{operation_id}/artifacts/{name}";
// HEAD reads no content: counted apart, so that the download's sizes and durations are those of downloads.
const headRoute = "HEAD /v1/operations/{operation_id}/artifacts/{name}";

/** Each route's method and template, as the metrics label REST calls (their series exist from start). */
export const artifactRouteLabels: readonly RouteLabel[] = [
  { method: WorkerService.method.uploadArtifact, protocol: "rest", route: uploadRoute },
  { method: OperationService.method.downloadArtifact, protocol: "rest", route: downloadRoute },
  { method: OperationService.method.downloadArtifact, protocol: "rest", route: headRoute },
];

/**
 * Artifacts over plain HTTP, for scripts and browsers:
 *   - `PUT /v1/tasks/{task_id}/artifacts/{name}` uploads the raw body as the
 *     artifact (`Content-Type` its media type, `Content-Length` its size,
 *     `Anvil-Lease-Token` the task's lease) and answers 201 with the
 *     artifact in JSON. The route is under the task, as ReportProgress and
 *     CompleteTask are: the lease belongs to the task, and the task names
 *     its operation, so the URL carries nothing the server must check
 *     twice. The token is a header, not a query parameter, because URLs
 *     end up in logs.
 *   - `GET /v1/operations/{operation_id}/artifacts/{name}` downloads it with
 *     `Content-Type`, `Content-Length`, a strong `ETag`,
 *     `Content-Disposition: attachment`, one `Range` (206, or 416 past the
 *     end) honoured only while `If-Range`, when sent, names the current
 *     entity tag (else 200 with the whole file, RFC 9110 §13.1.5), and
 *     `If-None-Match` (304). `HEAD` answers the same status and headers
 *     without reading any content.
 * Both are the RPCs (WorkerService.UploadArtifact,
 * OperationService.DownloadArtifact) run through the same interceptors —
 * authentication, permissions, limits, audit, metrics, access log — with the
 * body cut into request messages, or the response messages written as the
 * body, one chunk at a time as the client takes them.
 */
export function createArtifactRoutes(options: ArtifactRoutesOptions): RouteHandler {
  return (req, res) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    const up = uploadPath.exec(path);
    const down = up === null ? downloadPath.exec(path) : null;
    if (up === null && down === null) return false;
    const method = up !== null ? WorkerService.method.uploadArtifact : OperationService.method.downloadArtifact;
    const allowed = up !== null ? ["PUT"] : ["GET", "HEAD"];
    const serve = async (meter: ObservedCall) => {
      if (!allowed.includes(req.method ?? "")) {
        res.setHeader("allow", allowed.join(", "));
        meter.code(Code.Unimplemented);
        meter.sent(await sendRestError(req, res, new ConnectError(`${req.method} is not allowed on ${path}; use ${allowed.join(" or ")}`, Code.Unimplemented), options.compressMinBytes, 405));
        return;
      }
      const [a, b] = (up ?? down)!.slice(1).map((s) => decodeURIComponent(s!));
      if (up !== null) await serveUpload(req, res, a!, b!, options, meter);
      else await serveDownload(req, res, a!, b!, options, meter);
    };
    // A method the route does not allow is counted under the route's own label: any other would let clients mint label values.
    const route = up !== null ? uploadRoute : req.method === "HEAD" ? headRoute : downloadRoute;
    void options.calls.observe(method, "rest", req, route, serve, (err) => {
      if (!res.headersSent) void sendRestError(req, res, toConnectError(err, ""), options.compressMinBytes);
      else if (!res.destroyed) res.destroy();
    });
    return true;
  };
}

/** Runs the call's first steps shared by both routes: authentication decided from the headers, the deadline, the abort on disconnect. */
async function begin(req: NodeRequest, res: NodeResponse, options: ArtifactRoutesOptions, meter: ObservedCall, method: typeof WorkerService.method.uploadArtifact | typeof OperationService.method.downloadArtifact) {
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableEnded) abort.abort(new ConnectError("client disconnected", Code.Canceled));
  };
  res.once("close", onClose);
  const requestHeader = new RequestHeaders(req.headers);
  const auth = await options.authenticator.decide(method, requestHeader, req.socket?.remoteAddress);
  meter.values.set(authOutcomeKey, auth);
  const timeoutHeader = req.headers["connect-timeout-ms"];
  const timeout = parseTimeout(typeof timeoutHeader === "string" ? timeoutHeader : null, Number.MAX_SAFE_INTEGER);
  if (timeout.error) throw timeout.error;
  const init = {
    requestMethod: req.method ?? "GET",
    url: req.url ?? "/",
    protocolName: "rest",
    requestHeader,
    signal: abort.signal,
    timeoutMs: clampTimerMs(timeout.timeoutMs),
    contextValues: meter.values,
  };
  return { init, refused: "refused" in auth, abort, done: () => res.off("close", onClose) };
}

async function serveUpload(req: NodeRequest, res: NodeResponse, taskId: string, name: string, options: ArtifactRoutesOptions, meter: ObservedCall): Promise<void> {
  const call = await begin(req, res, options, meter, WorkerService.method.uploadArtifact);
  try {
    const length = req.headers["content-length"];
    const contentType = req.headers["content-type"];
    const leaseToken = req.headers[leaseTokenHeader];
    const header = create(UploadArtifactRequestSchema, {
      item: {
        case: "header",
        value: {
          taskId,
          name,
          leaseToken: typeof leaseToken === "string" ? leaseToken : "",
          contentType: contentType ?? "",
          // Without a Content-Length (a chunked body) the size is whatever arrives, within the limit.
          ...(length !== undefined && /^\d{1,15}$/.test(length) && { sizeBytes: BigInt(length) }),
        },
      },
    });
    // A refused caller's body is never read: the chain refuses at the first message.
    const messages = call.refused ? one(header) : bodyMessages(req, header, meter);
    const response = (await options.upload(call.init, messages)) as UploadArtifactResponse;
    const body = toJsonString(ArtifactSchema, response.artifact!);
    meter.code(0);
    res.writeHead(201, { "content-type": "application/json", etag: response.artifact!.etag, location: downloadUrl(response.artifact!) });
    res.end(body);
    meter.sent(Buffer.byteLength(body));
  } catch (err) {
    const error = err instanceof ConnectError ? err : toConnectError(err, "");
    meter.code(error.code);
    if (res.headersSent || res.destroyed) return;
    error.metadata.forEach((value, n) => res.setHeader(n, value));
    // An upload refused before its body was read: the connection cannot be reused for the next request.
    if (!req.complete && req.httpVersionMajor === 1) res.setHeader("connection", "close");
    meter.sent(await sendRestError(req, res, error, options.compressMinBytes, uploadErrorStatus(error)));
  } finally {
    call.done();
  }
}

/** 413 for an artifact over the size limit (RESOURCE_EXHAUSTED without a rate limit's Retry-After), else as REST answers. */
function uploadErrorStatus(error: ConnectError): number {
  if (error.code === Code.ResourceExhausted && !error.metadata.has("retry-after")) return 413;
  return errorStatus(error);
}

function downloadUrl(a: ArtifactMessage): string {
  return `/v1/operations/${a.operationId}/artifacts/${encodeURIComponent(a.name)}`;
}

async function* one(message: Message): AsyncGenerator<Message> {
  yield message;
}

/**
 * The header, then each piece of the body as it arrives as one chunk
 * message (the service regroups them). Only an authenticated caller's body
 * is read here, so only it is timed by the gap between pieces rather than
 * by the request deadline (streamingBody): a large file may take as long as
 * it takes while it keeps arriving.
 */
async function* bodyMessages(req: NodeRequest, header: Message, meter: ObservedCall): AsyncGenerator<Message> {
  yield header;
  try {
    for await (const piece of req.iterator({ destroyOnReturn: false })) {
      streamingBody(req);
      meter.received((piece as Uint8Array).byteLength);
      yield create(UploadArtifactRequestSchema, { item: { case: "chunk", value: piece as Uint8Array } });
    }
  } catch (err) {
    throw ConnectError.from(err, Code.Canceled);
  }
}

async function serveDownload(req: NodeRequest, res: NodeResponse, operationId: string, name: string, options: ArtifactRoutesOptions, meter: ObservedCall): Promise<void> {
  const call = await begin(req, res, options, meter, OperationService.method.downloadArtifact);
  let messages: AsyncIterator<Message> | undefined;
  try {
    const rangeHeader = req.headers.range;
    const requested: RequestedRange | undefined = typeof rangeHeader === "string" ? parseByteRange(rangeHeader) : undefined;
    // If-Range without a Range means nothing (RFC 9110): only a range is conditional.
    const ifRangeHeader = req.headers["if-range"];
    const ifRange = requested === undefined || typeof ifRangeHeader !== "string" ? undefined : ifRangeHeader;
    const input = create(OperationService.method.downloadArtifact.input, { operationId, name, ...rangeFields(requested), ifRange: ifRange ?? "" });
    messages = options.download(call.init, input)[Symbol.asyncIterator]();
    const first = await messages.next();
    const item = first.done === true ? undefined : (first.value as DownloadArtifactResponse).item;
    if (item?.case !== "artifact") throw new ConnectError("download answered no artifact", Code.Internal);
    const artifact = item.value;
    const size = Number(artifact.sizeBytes);
    const common = { etag: artifact.etag, "accept-ranges": "bytes", "cache-control": "private, no-cache" };
    meter.code(0);
    if (matchesEtag(req.headers["if-none-match"], artifact.etag)) {
      res.writeHead(304, common);
      res.end();
      return;
    }
    // The RPC applied the same rule: a range meant for other content is the whole artifact.
    const honoured = requested !== undefined && (ifRange === undefined || ifRange.trim() === artifact.etag);
    const range = honoured ? resolveRange(size, requested) : undefined;
    if (honoured && (range === undefined || range.start >= size)) {
      res.writeHead(416, { ...common, "content-range": `bytes */${size}` });
      res.end();
      return;
    }
    const headers = {
      ...common,
      "content-type": artifact.contentType,
      "content-length": String(range === undefined ? size : range.end - range.start),
      "content-disposition": `attachment; filename="${artifact.name}"`,
      ...(range !== undefined && { "content-range": `bytes ${range.start}-${range.end - 1}/${size}` }),
    };
    res.writeHead(range === undefined ? 200 : 206, headers);
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    for (let next = await messages.next(); next.done !== true; next = await messages.next()) {
      const piece = (next.value as DownloadArtifactResponse).item;
      if (piece.case === "chunk") await write(res, piece.value, meter);
    }
    res.end();
  } catch (err) {
    const error = err instanceof ConnectError ? err : toConnectError(err, "");
    meter.code(call.abort.signal.aborted ? Code.Canceled : error.code);
    if (call.abort.signal.aborted || res.destroyed) return;
    // Cut short mid-body: the client sees a body shorter than its Content-Length and retries with a Range.
    if (res.headersSent) return void res.destroy();
    error.metadata.forEach((value, n) => res.setHeader(n, value));
    meter.sent(await sendRestError(req, res, error, options.compressMinBytes, errorStatus(error)));
  } finally {
    call.done();
    // Lets the call's finalizers (access log, span) run now, and reads no further chunk.
    await messages?.return?.().catch(() => undefined);
  }
}

/** The request fields of a Range header's single range. */
function rangeFields(range: RequestedRange | undefined) {
  if (range === undefined) return {};
  return { offset: BigInt(range.offset), limit: BigInt(range.limit), suffixBytes: BigInt(range.suffixBytes) };
}

/** Whether `If-None-Match` names the entity tag (or is `*`); weak comparison, as RFC 9110 asks for this header. */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(",").some((t) => {
    const tag = t.trim();
    return tag === "*" || tag.replace(/^W\//, "") === etag;
  });
}

/**
 * Writes one chunk and resolves once it has gone out to the socket (its
 * write callback), not merely been queued: the download reads the next
 * chunk into the same buffer (ArtifactsService), and a slow client holds
 * one chunk, not the file.
 */
function write(res: NodeResponse, bytes: Uint8Array, meter: ObservedCall): Promise<void> {
  meter.sent(bytes.byteLength);
  return new Promise((resolve, reject) => {
    const gone = () => reject(new ConnectError("client disconnected", Code.Canceled));
    if (res.destroyed) return gone();
    // A response destroyed with the write still queued may never call back.
    res.once("close", gone);
    (res as NodeJS.WritableStream).write(bytes, (err) => {
      res.off("close", gone);
      if (err) gone();
      else resolve();
    });
  });
}
