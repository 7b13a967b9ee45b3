import type { UniversalServerResponse } from "@connectrpc/connect/protocol";

const header = "grpc-message";

/**
 * connect-node percent-encodes the gRPC `grpc-message` trailer with
 * encodeURIComponent, which also escapes printable ASCII such as ":" and "/".
 * The gRPC HTTP/2 spec escapes only bytes outside 0x20–0x7E and "%", and
 * @grpc/grpc-js decodes with decodeURI, which leaves "%3A" in place: its
 * users would read "invalid request%3A user.email …". Re-encoding the way the
 * spec does keeps messages readable for every gRPC client (connect's own
 * client decodes both forms). The trailer is filled in only once the body has
 * been sent, so it is rewritten after the last chunk.
 */
export function encodeGrpcMessageAsSpecified(res: UniversalServerResponse): UniversalServerResponse {
  reencode(res.header);
  const body = res.body;
  if (body === undefined) {
    reencode(res.trailer);
    return res;
  }
  return {
    ...res,
    body: (async function* () {
      yield* body;
      reencode(res.trailer);
    })(),
  };
}

/** Re-encodes the `grpc-message` field of `headers`, if present, as the gRPC spec says. */
export function reencode(headers: Headers | undefined): void {
  const value = headers?.get(header);
  if (value === null || value === undefined) return;
  headers!.set(header, percentEncode(percentDecode(value)));
}

function percentDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    // Not valid percent-encoding: leave it as the sender wrote it.
    return value;
  }
}

function percentEncode(text: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
