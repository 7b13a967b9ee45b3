import { Code, ConnectError } from "@connectrpc/connect";
import type { NodeRequest } from "../connect-handler.js";
import { decompress } from "../http-compression.js";
import { decodeUtf8 } from "../message-decoding.js";

/** A body that is too large: RESOURCE_EXHAUSTED, sent as HTTP 413 on REST routes. */
export class BodyTooLargeError extends ConnectError {
  /** Marker for isBodyTooLarge: ConnectError's own `instanceof` matches any ConnectError, subclasses included. */
  readonly bodyTooLarge = true;

  constructor(maxBytes: number) {
    super(`request body larger than ${maxBytes} bytes`, Code.ResourceExhausted);
  }
}

/** Whether `error` is a BodyTooLargeError. */
export function isBodyTooLarge(error: unknown): boolean {
  return (error as { bodyTooLarge?: unknown } | null)?.bodyTooLarge === true;
}

/**
 * Reads a REST request body as text, honouring `Content-Encoding` (gzip, br)
 * and refusing more than `maxBytes` before or after decompression — the
 * ANVIL_MAX_REQUEST_BYTES limit Connect applies to RPC bodies. The check on
 * `Content-Length` answers an oversized upload before reading it.
 * `onBytes` is told each chunk's size as read (for the metrics).
 */
export async function readRequestBody(req: NodeRequest, maxBytes: number, onBytes?: (n: number) => void): Promise<string> {
  // Stryker disable next-line StringLiteral: equivalent: Number("") is 0 too
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > maxBytes) throw new BodyTooLargeError(maxBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    onBytes?.(chunk.byteLength);
    if (size > maxBytes) throw new BodyTooLargeError(maxBytes);
    chunks.push(chunk);
  }
  let body: Buffer = Buffer.concat(chunks);
  // Stryker disable next-line MethodExpression,StringLiteral: equivalent: HTTP parsers strip a field value's surrounding whitespace, and no header reads as "" which is identity
  const coding = (req.headers["content-encoding"] ?? "identity").trim().toLowerCase();
  if (coding === "gzip" || coding === "br") {
    try {
      body = await decompress(coding, body, maxBytes);
    } catch (err) {
      if (err instanceof RangeError) throw new BodyTooLargeError(maxBytes);
      throw new ConnectError(`request body is not valid ${coding}`, Code.InvalidArgument);
    }
  } else if (coding !== "identity" && coding !== "") {
    throw new ConnectError(`unsupported Content-Encoding ${JSON.stringify(coding)}; use gzip, br or identity`, Code.Unimplemented);
  }
  try {
    return await decodeUtf8(body);
  } catch {
    throw new ConnectError("request body is not UTF-8", Code.InvalidArgument);
  }
}
