import { create, type DescMethodUnary, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionNegotiate, encodeEnvelope, type Compression } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  errorToJsonBytes,
  parseContentType as parseConnectContentType,
  parseTimeout as parseConnectTimeout,
  trailerMux,
} from "@connectrpc/connect/protocol-connect";
import { parseContentType as parseGrpcContentType, parseTimeout as parseGrpcTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { parseContentType as parseGrpcWebContentType, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { type AuthOutcome, authOutcomeKey, type CallAuthenticator } from "../../rpc/call-authenticator.js";
import type { RefusalAudit } from "../../rpc/refusal-audit.js";
import { clientAddress } from "../client-address.js";
import type { NodeRequest, NodeResponse } from "../connect-handler.js";
import { reencode as reencodeGrpcMessage } from "../grpc-message-encoding.js";
import { parseMessage, serializeMessage } from "./codec.js";
import { LazyAbort } from "./lazy-abort.js";
import { readBody } from "./read-body.js";
import { RequestHeaders } from "./request-headers.js";
import type { UnaryCall } from "./unary-call.js";
import { writeResponse } from "./write-response.js";
import { clampTimerMs } from "../../shared/timer-limit.js";
import type { CallObserver, ObservedCall } from "../call-observer.js";

/** Options of createFastUnaryHandler. */
export interface FastUnaryOptions {
  readonly method: DescMethodUnary;
  /** The method's interceptors and implementation (composeUnaryCall). */
  readonly call: UnaryCall;
  /** Decides from the headers, before the body is read, whether the caller may call. */
  readonly authenticator: CallAuthenticator;
  /** Where refusals decided before the interceptors run (a body over its limit) are recorded. */
  readonly refusals: RefusalAudit;
  readonly readMaxBytes: number;
  readonly compressMinBytes: number;
  readonly acceptCompression: readonly Compression[];
  /** Where every call is counted, traced and logged. */
  readonly calls: CallObserver;
}

type Protocol = { readonly name: "connect" | "grpc" | "grpc-web"; readonly binary: boolean };

const maxTimeoutMs = Number.MAX_SAFE_INTEGER;
const compressedFlag = 0b00000001;
const grpcWebTrailerFlag = 0b10000000;

/**
 * Serves one unary method over Connect (POST), gRPC and gRPC-Web without
 * connect-node's universal handler: no per-call async-iterable pipeline, no
 * linked abort controllers, no DOMException on every completed call, no
 * per-call interceptor composition, no copy of every request header. Every
 * wire decision — content types, timeouts, compression negotiation, size
 * limits, status codes, error JSON, trailers and status details — is made by
 * connect's own exported protocol functions, so the bytes on the wire are
 * those of the universal path (test/serving-paths.test.ts runs the protocol
 * matrix against both). Returns false for what it does not handle (Connect
 * GET, gRPC-Web text, unknown content types, other methods), which the
 * universal handler then answers.
 */
export function createFastUnaryHandler(options: FastUnaryOptions): (req: NodeRequest, res: NodeResponse) => boolean {
  const { method, call } = options;

  async function serve(protocol: Protocol, req: NodeRequest, res: NodeResponse, meter: ObservedCall): Promise<void> {
    const grpcLike = protocol.name !== "connect";
    const requestHeader = new RequestHeaders(req.headers);
    const responseHeader = new Headers({ "content-type": responseContentType(protocol) });
    const responseTrailer = grpcLike ? new Headers({ "grpc-status": "0" }) : new Headers();
    const timeout = grpcLike
      ? parseGrpcTimeout(requestHeader.get("grpc-timeout"), maxTimeoutMs)
      : parseConnectTimeout(requestHeader.get("connect-timeout-ms"), maxTimeoutMs);
    const compression = grpcLike
      ? compressionNegotiate([...options.acceptCompression], requestHeader.get("grpc-encoding"), requestHeader.get("grpc-accept-encoding"), "Grpc-Accept-Encoding")
      : compressionNegotiate([...options.acceptCompression], requestHeader.get("content-encoding"), requestHeader.get("accept-encoding"), "Accept-Encoding");
    if (grpcLike && compression.response) responseHeader.set("grpc-encoding", compression.response.name);

    const abort = new LazyAbort();
    let timer: NodeJS.Timeout | undefined;
    // Clamped: a longer timer would fire at once (see timer-limit.ts).
    const timeoutMs = clampTimerMs(timeout.timeoutMs);
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => abort.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs);
    }
    const onClose = () => {
      if (!res.writableEnded) abort.abort(new ConnectError("client disconnected", Code.Canceled));
    };
    res.once("close", onClose);

    let body: Uint8Array | undefined;
    let error: ConnectError | undefined;
    let auth: AuthOutcome | undefined;
    try {
      if (compression.error) throw compression.error;
      if (timeout.error) throw timeout.error;
      const values = meter.values;
      auth = await options.authenticator.decide(method, requestHeader, req.socket?.remoteAddress);
      values.set(authOutcomeKey, auth);
        // A refused caller's body is never read: the interceptor chain refuses
      // the call (logged and mapped as any refusal) before anything looks
      // at its message.
      const input = "refused" in auth ? create(method.input) : await readInput(protocol, req, compression.request, meter);
      const output = await call(
        {
          requestMethod: "POST",
          url: requestUrl(req),
          protocolName: protocol.name,
          requestHeader,
          responseHeader,
          responseTrailer,
          abort,
          timeoutMs,
          contextValues: values,
        },
        input,
      );
      body = serializeMessage(method.output, protocol.binary, output.message);
    } catch (e) {
      error = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
      // Refusals the interceptors made are recorded already; this catches those made before them.
      options.refusals.record(error, {
        method,
        protocol: protocol.name,
        headers: requestHeader,
        clientAddress: auth?.client ?? clientAddress(req),
        principal: auth !== undefined && "principal" in auth ? auth.principal : undefined,
      });
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      res.off("close", onClose);
    }
    meter.code(error?.code ?? 0);

    if (!grpcLike) {
      let status = 200;
      if (error) {
        status = codeToHttpStatus(error.code);
        responseHeader.set("content-type", "application/json");
        error.metadata.forEach((value, key) => responseHeader.set(key, value));
        body = errorToJsonBytes(error, {});
      }
      let out = body as Uint8Array;
      if (compression.response && out.byteLength >= options.compressMinBytes) {
        out = await compression.response.compress(out);
        responseHeader.set("content-encoding", compression.response.name);
      }
      const header = trailerMux(responseHeader, responseTrailer);
      header.set("content-length", String(out.byteLength));
      meter.sent(out.byteLength);
      writeResponse(res, status, header, out);
      return;
    }

    let envelope: Uint8Array | undefined;
    if (body !== undefined) envelope = await envelopeOf(body, compression.response, options.compressMinBytes);
    if (error) setTrailerStatus(responseTrailer, error);
    if (protocol.name === "grpc") {
      reencodeGrpcMessage(responseTrailer);
      meter.sent(envelope?.byteLength ?? 0);
      writeResponse(res, 200, responseHeader, envelope, responseTrailer);
      return;
    }
    // gRPC-Web carries the trailers in a final envelope of the body.
    let trailerBytes = trailerSerialize(responseTrailer);
    let trailerFlags = grpcWebTrailerFlag;
    if (compression.response && trailerBytes.byteLength >= options.compressMinBytes) {
      trailerBytes = await compression.response.compress(trailerBytes);
      trailerFlags |= compressedFlag;
    }
    const trailerEnvelope = encodeEnvelope(trailerFlags, trailerBytes);
    meter.sent((envelope?.byteLength ?? 0) + trailerEnvelope.byteLength);
    writeResponse(res, 200, responseHeader, envelope ? Buffer.concat([envelope, trailerEnvelope]) : trailerEnvelope);
  }

  async function readInput(protocol: Protocol, req: NodeRequest, decompression: Compression | null, meter: ObservedCall): Promise<Message> {
    let bytes = protocol.name !== "connect"
      ? await readBody(req, { maxBytes: options.readMaxBytes + 5, inspectHead: (head) => envelopeTooLarge(head, options.readMaxBytes) })
      : await readBody(req, { maxBytes: options.readMaxBytes });
    meter.received(bytes.byteLength);
    if (protocol.name !== "connect") {
      bytes = await unwrapEnvelope(bytes, options.readMaxBytes, decompression, method);
    } else if (decompression) {
      bytes = await decompression.decompress(bytes, options.readMaxBytes);
    }
    return parseMessage(method.input, protocol.binary, bytes);
  }

  return (req, res) => {
    if (req.method !== "POST") return false;
    const protocol = detect(req.headers["content-type"] ?? "");
    if (protocol === undefined) return false;
    void options.calls.observe(method, protocol.name === "grpc-web" ? "grpc_web" : protocol.name, req, "", (call) => serve(protocol, req, res, call), () => {
      // Writing failed: the client is gone; there is no one left to answer.
      if (!res.destroyed) res.destroy();
    });
    return true;
  };
}

function detect(contentType: string): Protocol | undefined {
  if (contentType.startsWith("application/grpc-web")) {
    const t = parseGrpcWebContentType(contentType);
    return t === undefined || t.text ? undefined : { name: "grpc-web", binary: t.binary };
  }
  if (contentType.startsWith("application/grpc")) {
    const t = parseGrpcContentType(contentType);
    return t === undefined ? undefined : { name: "grpc", binary: t.binary };
  }
  const t = parseConnectContentType(contentType);
  return t === undefined || t.stream ? undefined : { name: "connect", binary: t.binary };
}

function responseContentType(p: Protocol): string {
  switch (p.name) {
    case "connect":
      return p.binary ? "application/proto" : "application/json";
    case "grpc":
      return p.binary ? "application/grpc+proto" : "application/grpc+json";
    case "grpc-web":
      return p.binary ? "application/grpc-web+proto" : "application/grpc-web+json";
  }
}

/** The single message of a unary gRPC or gRPC-Web request body, with connect's errors for anything else. */
async function unwrapEnvelope(
  bytes: Uint8Array,
  readMaxBytes: number,
  compression: Compression | null,
  method: DescMethodUnary,
): Promise<Uint8Array> {
  if (bytes.byteLength === 0) {
    throw new ConnectError(`protocol error: missing input message for ${method.methodKind} method`, Code.Unimplemented);
  }
  if (bytes.byteLength < 5) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const flags = view.getUint8(0);
  const length = view.getUint32(1);
  if (length > readMaxBytes) {
    throw new ConnectError(`message size ${length} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted);
  }
  if (bytes.byteLength < 5 + length) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  if (bytes.byteLength > 5 + length) {
    throw new ConnectError(`protocol error: received extra input message for ${method.methodKind} method`, Code.Unimplemented);
  }
  if (flags & grpcWebTrailerFlag) throw new ConnectError("protocol error: unexpected trailer in request", Code.InvalidArgument);
  const data = bytes.subarray(5);
  if ((flags & compressedFlag) === 0) return data;
  if (!compression) throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
  return compression.decompress(data, readMaxBytes);
}

/** connect's error for an envelope that declares more than readMaxBytes. */
function envelopeTooLarge(head: Buffer, readMaxBytes: number): ConnectError | undefined {
  if (head.byteLength < 5) return undefined;
  const length = head.readUInt32BE(1);
  if (length <= readMaxBytes) return undefined;
  return new ConnectError(`message size ${length} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted);
}

async function envelopeOf(body: Uint8Array, compression: Compression | null, compressMinBytes: number): Promise<Uint8Array> {
  if (compression && body.byteLength >= compressMinBytes) {
    return encodeEnvelope(compressedFlag, await compression.compress(body));
  }
  return encodeEnvelope(0, body);
}

function requestUrl(req: NodeRequest): string {
  const host = req.headers[":authority"] ?? req.headers.host ?? "localhost";
  const scheme = (req.socket as { encrypted?: boolean }).encrypted ? "https" : "http";
  return `${scheme}://${host}${req.url ?? "/"}`;
}
