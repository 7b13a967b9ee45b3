import type { UniversalServerResponse } from "@connectrpc/connect/protocol";

/**
 * connect-node answers a request whose protobuf bytes do not parse with
 * INTERNAL ("parse binary: …"), as if the server were at fault. It is the
 * client's input that is bad, so Anvil reports INVALID_ARGUMENT, as it does
 * for malformed JSON. The error is raised inside connect's protocol
 * handlers, before any interceptor, so this rewrites the status in the three
 * places a protocol carries it: the Connect unary JSON error body, gRPC
 * trailers, and the final envelope of gRPC-Web and Connect streaming.
 */
export async function reclassifyBinaryParseErrors(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const body = res.body;
  if (body === undefined) return res;
  if (res.status === 500 && res.header?.get("content-type")?.startsWith("application/json")) {
    // Connect unary: an error is a small JSON body with an HTTP error status.
    const chunks: Uint8Array[] = [];
    for await (const chunk of body) chunks.push(chunk);
    const bytes = Buffer.concat(chunks);
    const fixed = fixConnectErrorJson(bytes, false);
    if (!fixed) return { ...res, body: once(bytes) };
    const header = new Headers(res.header);
    header.set("content-length", String(fixed.byteLength));
    return { ...res, status: 400, header, body: once(fixed) };
  }
  if (res.status !== 200) return res;
  return { ...res, body: rewriteFinalEnvelope(body, res) };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

const parseBinaryPrefix = "parse binary: ";

async function* rewriteFinalEnvelope(body: AsyncIterable<Uint8Array>, res: UniversalServerResponse): AsyncIterable<Uint8Array> {
  for await (const chunk of body) yield fixEnvelope(chunk);
  // gRPC: the status travels in HTTP trailers, filled once the body ends.
  const trailer = res.trailer;
  if (trailer?.get("grpc-status") === "13" && decodeURIComponent(trailer.get("grpc-message") ?? "").startsWith(parseBinaryPrefix)) {
    trailer.set("grpc-status", "3");
  }
}

function fixEnvelope(chunk: Uint8Array): Uint8Array {
  if (chunk.byteLength < 5) return chunk;
  const flags = chunk[0] as number;
  const length = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).getUint32(1);
  if (5 + length !== chunk.byteLength || (flags & 0x01) !== 0) return chunk; // not one whole uncompressed envelope
  const data = chunk.subarray(5);
  let fixed: Uint8Array | undefined;
  if (flags & 0x80) fixed = fixGrpcWebTrailer(data);
  else if (flags & 0x02) fixed = fixConnectErrorJson(data, true);
  if (!fixed) return chunk;
  const out = new Uint8Array(5 + fixed.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, fixed.byteLength);
  out.set(fixed, 5);
  return out;
}

function fixGrpcWebTrailer(data: Uint8Array): Uint8Array | undefined {
  const text = new TextDecoder().decode(data);
  const message = /^grpc-message: *(.*)\r$/m.exec(text)?.[1] ?? "";
  if (!/^grpc-status: *13\r$/m.test(text) || !decodeURIComponent(message).startsWith(parseBinaryPrefix)) return undefined;
  return new TextEncoder().encode(text.replace(/^grpc-status: *13\r$/m, "grpc-status: 3\r"));
}

function fixConnectErrorJson(data: Uint8Array, endStream: boolean): Uint8Array | undefined {
  let json: { code?: string; message?: string; error?: { code?: string; message?: string } };
  try {
    json = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
  const error = endStream ? json.error : json;
  if (error?.code !== "internal" || !error.message?.startsWith(parseBinaryPrefix)) return undefined;
  error.code = "invalid_argument";
  return new TextEncoder().encode(JSON.stringify(json));
}
