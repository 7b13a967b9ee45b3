/**
 * The 5-byte envelope gRPC and gRPC-Web put around every message (flags,
 * big-endian length). The bench builds request bodies with it for h2load,
 * which only sends bytes from a file, and reads it back to check responses.
 */

/** Flag of a gRPC-Web frame that carries trailers instead of a message. */
export const trailerFlag = 0x80;

/** One enveloped frame. */
export interface Frame {
  readonly flags: number;
  readonly data: Buffer;
}

/** Wraps one serialized message in the gRPC envelope (uncompressed). */
export function envelope(message: Uint8Array, flags = 0): Buffer {
  const out = Buffer.allocUnsafe(5 + message.byteLength);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}

/** Splits a body into its frames; throws if the body is cut short, so a truncated answer never passes a check. */
export function frames(body: Buffer): Frame[] {
  const out: Frame[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 5) throw new Error(`truncated frame header at byte ${at}`);
    const flags = body.readUInt8(at);
    const length = body.readUInt32BE(at + 1);
    if (body.length - at - 5 < length) throw new Error(`frame of ${length} bytes cut short`);
    out.push({ flags, data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

/** Parses a gRPC-Web trailer frame ("name: value\r\n" lines) into lower-cased names. */
export function parseTrailerFrame(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of data.toString("latin1").split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) out[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return out;
}
