import { Code, ConnectError } from "@connectrpc/connect";
import type { NodeRequest } from "../connect-handler.js";

/** How readBody limits a body. */
export interface ReadBodyLimits {
  readonly maxBytes: number;
  /**
   * For enveloped protocols: looks at the first bytes once five are in and
   * may refuse the body from the envelope's declared length, before the
   * rest is read. Connect's gRPC handlers judge by the envelope, not by
   * Content-Length, so when this is given Content-Length is not consulted.
   */
  readonly inspectHead?: (head: Buffer) => ConnectError | undefined;
}

/**
 * Reads a request body into one buffer, refusing it with RESOURCE_EXHAUSTED
 * as soon as it is known to be too large — from Content-Length or the
 * envelope header before reading on, or while reading — so an oversized
 * body is never buffered whole. Mirrors connect's readAllBytes, including
 * its messages.
 */
export function readBody(req: NodeRequest, limits: ReadBodyLimits): Promise<Uint8Array> {
  const { maxBytes, inspectHead } = limits;
  const declared = req.headers["content-length"];
  const hint = declared === undefined || inspectHead ? Number.NaN : Number(declared);
  if (hint > maxBytes) {
    return Promise.reject(
      new ConnectError(`message size ${hint} is larger than configured readMaxBytes ${maxBytes}`, Code.ResourceExhausted),
    );
  }
  return new Promise((resolve, reject) => {
    // With a declared length the body is copied into place as it arrives,
    // not joined at the end: one copy of 10 MiB at once is a pause every
    // other request waits for.
    const into = Number.isInteger(hint) && hint > 0 ? Buffer.allocUnsafe(hint) : undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    let inspected = inspectHead === undefined;
    const fail = (err: ConnectError) => {
      cleanup();
      req.resume(); // discard the rest without holding it
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      const at = size;
      size += chunk.byteLength;
      if (into !== undefined) {
        // More than promised: counted, not kept; the end reports the mismatch.
        if (size <= hint) chunk.copy(into, at);
      } else {
        chunks.push(chunk);
      }
      if (!inspected && size >= 5) {
        inspected = true;
        const refused = inspectHead!(chunks.length === 1 ? chunk : Buffer.concat(chunks));
        if (refused) return fail(refused);
      }
      if (size > maxBytes) {
        fail(new ConnectError(`message size is larger than configured readMaxBytes ${maxBytes}`, Code.ResourceExhausted));
      }
    };
    const onEnd = () => {
      cleanup();
      if (!Number.isNaN(hint) && size !== hint) {
        reject(new ConnectError(`protocol error: promised ${hint} bytes, received ${size}`, Code.InvalidArgument));
        return;
      }
      if (into !== undefined) resolve(into);
      else resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new ConnectError("request body could not be read", Code.Canceled, undefined, undefined, err));
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}
