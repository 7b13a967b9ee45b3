import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";

/**
 * gRPC-Web's text mode (`application/grpc-web-text`, the default of Google's
 * `grpc-web` npm client, needed there for server streaming): the very bytes
 * of binary gRPC-Web, base64-encoded both ways. connect-node serves binary
 * gRPC-Web only, so a text call is translated around connect's handler:
 * the request body is decoded and its content type made
 * `application/grpc-web+proto`; the response's chunks are encoded as they
 * come (each on its own, padding included, as Envoy's grpc_web filter
 * does: the client decodes whole 4-character groups, so a message is sent
 * as soon as it is written rather than waiting for the next one) and its
 * content type made `application/grpc-web-text+proto`. Trailers travel in
 * the body in gRPC-Web (a frame flagged 0x80), so they are encoded with it;
 * a trailers-only answer's headers pass unchanged.
 */
export function isGrpcWebText(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/grpc-web-text(\+proto)?(;|$)/i.test(contentType);
}

/** The request as binary gRPC-Web: content type changed, body base64-decoded as it arrives. */
export function decodeGrpcWebTextRequest(req: UniversalServerRequest & { body: AsyncIterable<Uint8Array> }): UniversalServerRequest {
  const header = new Headers(req.header);
  header.set("content-type", "application/grpc-web+proto");
  return { ...req, header, body: decodeBase64Stream(req.body) };
}

/** The response as gRPC-Web text: content type changed, body chunks base64-encoded one by one. */
export function encodeGrpcWebTextResponse(res: UniversalServerResponse): UniversalServerResponse {
  const header = new Headers(res.header);
  const type = header.get("content-type");
  if (type !== null && type.startsWith("application/grpc-web")) header.set("content-type", "application/grpc-web-text+proto");
  const body = res.body;
  if (body === undefined) return { ...res, header };
  return { ...res, header, body: encodeBase64Stream(body) };
}

const ascii = new TextDecoder("latin1");
const encoder = new TextEncoder();

function encodeBase64(bytes: Uint8Array): Uint8Array {
  return encoder.encode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"));
}

async function* encodeBase64Stream(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) if (chunk.byteLength > 0) yield encodeBase64(chunk);
}

/**
 * Decodes base64 text split anywhere (a network chunk may end mid-group)
 * and possibly made of several padded pieces (`AAA=BBBB`), as clients that
 * encode each write on its own send it: whole 4-character groups are
 * decoded, a group with padding ends a piece, and the rest waits for the
 * next chunk. Characters outside the alphabet fail the call, as connect
 * fails any body it cannot read.
 */
export async function* decodeBase64Stream(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let pending = "";
  for await (const chunk of body) {
    const text = ascii.decode(chunk).replace(/\s+/g, "");
    // Checked as it arrives: a body that is not base64 fails before any of it is taken for a frame.
    if (!/^[A-Za-z0-9+/=]*$/.test(text)) throw new ConnectError("gRPC-Web text body: not base64", Code.InvalidArgument);
    pending += text;
    const whole = pending.length - (pending.length % 4);
    if (whole === 0) continue;
    const decoded = decodeGroups(pending.slice(0, whole));
    pending = pending.slice(whole);
    if (decoded.byteLength > 0) yield decoded;
  }
  if (pending.length > 0) throw new ConnectError("gRPC-Web text body: base64 ends mid-group", Code.InvalidArgument);
}

const alphabet = /^[A-Za-z0-9+/]*={0,2}$/;

/** Whole groups, in pieces that each end at a padded group. */
function decodeGroups(text: string): Uint8Array {
  const pieces: Buffer[] = [];
  let start = 0;
  for (let i = text.indexOf("="); i !== -1; i = text.indexOf("=", start)) {
    const groupEnd = Math.ceil((i + 1) / 4) * 4;
    pieces.push(checked(text.slice(start, groupEnd)));
    start = groupEnd;
  }
  if (start < text.length) pieces.push(checked(text.slice(start)));
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
}

function checked(piece: string): Buffer {
  if (!alphabet.test(piece)) throw new ConnectError("gRPC-Web text body: not base64", Code.InvalidArgument);
  return Buffer.from(piece, "base64");
}
