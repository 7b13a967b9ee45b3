// Sends one fuzzed request over one protocol family, by hand, so that the
// bytes on the wire are exactly what the fuzzer chose (a client library
// would refuse to encode half of them), and reads back the code the gateway
// answered with, whatever the protocol spells it as.
import { connect as http2Connect, type ClientHttp2Session } from "node:http2";
import { type DescMethod, fromJson, type JsonObject, toBinary } from "@bufbuild/protobuf";
import type { RestRoute } from "../../../src/server/rest/rest-routes.js";
import { invalidUtf8Marker, knownIdMarker } from "./request-values.js";

/** The protocol families the gateway serves on its one port. */
export type WireProtocol = "connect-json" | "connect-binary" | "grpc" | "grpc-web" | "rest";
export const wireProtocols: readonly WireProtocol[] = ["connect-json", "connect-binary", "grpc", "grpc-web", "rest"];

/** One request as the fuzzer means to send it. */
export interface WireRequest {
  readonly method: DescMethod;
  readonly protocol: WireProtocol;
  /** The request message in proto3 JSON form, markers not yet resolved. */
  readonly json: unknown;
  /** For REST: which binding of the method. */
  readonly route?: RestRoute;
  /** `authorization` header value, if any. */
  readonly authorization?: string;
  /** Deadline in milliseconds as sent (raw header text), if any. */
  readonly timeout?: string;
  /** A damage done to the encoded body, for the binary protocols. */
  readonly damage: Damage;
}

/** Harm done to an encoded body: cut short, junk appended, a length prefix that lies, nesting deeper than any parser's stack. */
export type Damage = "none" | "truncate" | "garbage" | "length-lie" | "deep";
export const damages: readonly Damage[] = ["truncate", "garbage", "length-lie", "deep"];

/** What came back. */
export interface WireOutcome {
  /** Connect code name (`ok`, `invalid_argument`, …). */
  readonly code: string;
  readonly httpStatus: number;
  readonly ms: number;
  /** Body bytes sent. */
  readonly bytes: number;
  /** Response body text when it was an error, for reports (first KiB). */
  readonly detail?: string;
}

const grpcCodes = [
  "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied",
  "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal", "unavailable",
  "data_loss", "unauthenticated",
];

/** Ids of resources the gateway returned, so that some requests name things that exist. */
export class KnownIds {
  readonly #ids: string[] = [];
  #next = 0;
  /** Collects every `"id":"<uuid>"` of a JSON response. */
  collect(text: string): void {
    for (const m of text.matchAll(/"id":"([0-9a-f-]{36})"/g)) {
      if (this.#ids.length < 200 && !this.#ids.includes(m[1]!)) this.#ids.push(m[1]!);
    }
  }
  pick(): string {
    if (this.#ids.length === 0) return "6f1b7e1e-0c4a-4d0e-9f5e-000000000001";
    return this.#ids[this.#next++ % this.#ids.length]!;
  }
}

/** Sends `req` to the gateway at `port`, within `limitMs` (then it is cut off and reported as `client_timeout`). */
export async function send(port: number, req: WireRequest, ids: KnownIds, limitMs: number, h2: () => ClientHttp2Session): Promise<WireOutcome> {
  const json = resolveMarkers(req.json, ids);
  const started = performance.now();
  const done = (code: string, httpStatus: number, bytes: number, detail?: string): WireOutcome => ({
    code,
    httpStatus,
    bytes,
    ms: performance.now() - started,
    ...(detail ? { detail: detail.slice(0, 1024) } : {}),
  });
  const signal = AbortSignal.timeout(limitMs);
  const path = `/${req.method.parent.typeName}/${req.method.name}`;
  const streaming = req.method.methodKind === "server_streaming";
  try {
    switch (req.protocol) {
      case "connect-json":
      case "connect-binary": {
        const binary = req.protocol === "connect-binary";
        let body = binary ? damage(encodeBinary(req.method, json), req.damage) : damageJson(jsonBytes(json), req.damage);
        if (streaming) body = envelope(body, 0);
        const type = streaming ? (binary ? "application/connect+proto" : "application/connect+json") : binary ? "application/proto" : "application/json";
        const res = await fetch(`http://127.0.0.1:${port}${path}`, {
          method: "POST",
          headers: headers(req, { "content-type": type, ...(streaming ? {} : { "connect-protocol-version": "1" }) }, "connect-timeout-ms"),
          body: new Uint8Array(body),
          signal,
        });
        const bytes = new Uint8Array(await res.arrayBuffer());
        if (!streaming) {
          const text = new TextDecoder().decode(bytes);
          if (res.status === 200) {
            if (!binary) ids.collect(text);
            return done("ok", 200, body.length);
          }
          return done(jsonCode(text) ?? `http_${res.status}`, res.status, body.length, text);
        }
        // Streams: the last envelope (flag 2) holds the end-of-stream JSON.
        const end = lastEnvelope(bytes, 0x02);
        const text = end ? new TextDecoder().decode(end) : "";
        if (res.status !== 200) return done(jsonCode(new TextDecoder().decode(bytes)) ?? `http_${res.status}`, res.status, body.length);
        return done(end ? (jsonCode(text) ?? "ok") : "missing_end_stream", 200, body.length, text);
      }
      case "grpc-web": {
        const body = envelope(damage(encodeBinary(req.method, json), req.damage), 0);
        const res = await fetch(`http://127.0.0.1:${port}${path}`, {
          method: "POST",
          headers: headers(req, { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" }, "grpc-timeout"),
          body: new Uint8Array(body),
          signal,
        });
        const bytes = new Uint8Array(await res.arrayBuffer());
        const headerStatus = res.headers.get("grpc-status");
        const trailer = lastEnvelope(bytes, 0x80);
        const status = headerStatus ?? (trailer ? /grpc-status:\s*(\d+)/i.exec(new TextDecoder().decode(trailer))?.[1] : undefined);
        const message = res.headers.get("grpc-message") ?? (trailer ? new TextDecoder().decode(trailer) : "");
        if (status === undefined) return done(`http_${res.status}`, res.status, body.length, new TextDecoder().decode(bytes.slice(0, 512)));
        return done(grpcCodes[Number(status)] ?? `grpc_${status}`, res.status, body.length, message);
      }
      case "grpc": {
        const body = envelope(damage(encodeBinary(req.method, json), req.damage), 0);
        return await new Promise<WireOutcome>((resolve) => {
          const session = h2();
          const stream = session.request({ ":method": "POST", ":path": path, ...headers(req, { "content-type": "application/grpc", te: "trailers" }, "grpc-timeout") }, { signal });
          let httpStatus = 0;
          let status: string | undefined;
          let message = "";
          stream.on("response", (h) => {
            httpStatus = Number(h[":status"]);
            if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
            message = String(h["grpc-message"] ?? "");
          });
          stream.on("trailers", (t) => {
            if (t["grpc-status"] !== undefined) status = String(t["grpc-status"]);
            message = String(t["grpc-message"] ?? message);
          });
          stream.on("data", () => {});
          const finish = () =>
            resolve(status === undefined ? done(httpStatus ? `http_${httpStatus}` : "no_status", httpStatus, body.length, message) : done(grpcCodes[Number(status)] ?? `grpc_${status}`, httpStatus, body.length, decodeURIComponent(message)));
          stream.on("close", () => {
            // Node's HTTP/2 client counts the unsent rest of a body the server answered before reading it against
            // its session's memory for the session's whole life: after ~10 MiB of such bodies (a refused upload
            // or two) it refuses its own new streams with ENHANCE_YOUR_CALM, gateway or not. A real client
            // reconnects then; this one starts a new session at once.
            if (!stream.writableFinished) session.close();
            finish();
          });
          stream.on("error", (err: Error & { code?: string }) => {
            if (err.name === "AbortError" || err.code === "ABORT_ERR") resolve(done("client_timeout", httpStatus, body.length));
          });
          stream.end(body);
        });
      }
      case "rest": {
        const route = req.route!;
        const { url, body } = restRequest(route, json as JsonObject, req.damage);
        const res = await fetch(`http://127.0.0.1:${port}${url}`, {
          method: route.httpMethod,
          headers: headers(req, body === undefined ? {} : { "content-type": "application/json" }, "connect-timeout-ms"),
          ...(body === undefined ? {} : { body: new Uint8Array(body) }),
          signal,
        });
        const text = await res.text();
        if (res.status < 400) {
          ids.collect(text);
          return done("ok", res.status, body?.length ?? 0);
        }
        return done(jsonCode(text) ?? `http_${res.status}`, res.status, body?.length ?? 0, text);
      }
    }
  } catch (err) {
    const e = err as Error & { cause?: Error & { code?: string } };
    if (e.name === "TimeoutError" || e.name === "AbortError") return done("client_timeout", 0, 0);
    // The connection dropped or was refused: the gateway (or its socket) went away.
    if (e.message === "fetch failed" || e.cause?.code) return done(`transport_error:${e.cause?.code ?? e.cause?.message ?? e.message}`, 0, 0);
    throw err; // the fuzzer's own bug, not the gateway's

  }
}

function headers(req: WireRequest, base: Record<string, string>, timeoutHeader: string): Record<string, string> {
  return {
    ...base,
    ...(req.authorization ? { authorization: req.authorization } : {}),
    ...(req.timeout !== undefined ? { [timeoutHeader]: timeoutHeader === "grpc-timeout" ? `${req.timeout}m` : req.timeout } : {}),
  };
}

/** Replaces the known-id marker with an id the gateway returned earlier. */
function resolveMarkers(json: unknown, ids: KnownIds): unknown {
  if (typeof json === "string") return json.includes(knownIdMarker) ? json.replaceAll(knownIdMarker, ids.pick()) : json;
  if (Array.isArray(json)) return json.map((x) => resolveMarkers(x, ids));
  if (json !== null && typeof json === "object") return Object.fromEntries(Object.entries(json).map(([k, x]) => [k, resolveMarkers(x, ids)]));
  return json;
}

const markerBytes = new TextEncoder().encode(invalidUtf8Marker);

/** UTF-8 of `s`, with each invalid-UTF-8 marker swapped for bytes that are not UTF-8 (same length). */
export function withInvalidUtf8(bytes: Uint8Array): Uint8Array {
  for (let i = 0; i + 2 < bytes.length; i++) {
    if (bytes[i] === markerBytes[0] && bytes[i + 1] === markerBytes[1] && bytes[i + 2] === markerBytes[2]) {
      bytes[i] = 0xff;
      bytes[i + 1] = 0xfe;
      bytes[i + 2] = 0xc0;
      i += 2;
    }
  }
  return bytes;
}

function jsonBytes(json: unknown): Uint8Array {
  return withInvalidUtf8(new TextEncoder().encode(JSON.stringify(json)));
}

/**
 * The binary encoding of as much of `json` as protobuf-es will accept: field
 * by field, dropping values the binary form cannot carry (a number past
 * int64, a string where a message belongs).
 */
export function encodeBinary(method: DescMethod, json: unknown): Uint8Array {
  const schema = method.input;
  const obj = json !== null && typeof json === "object" && !Array.isArray(json) ? (json as JsonObject) : {};
  // Field by field, keeping each only if the message still converts with it
  // (two members of one oneof convert alone but not together).
  const kept: JsonObject = {};
  for (const [k, x] of Object.entries(obj)) {
    try {
      fromJson(schema, { ...kept, [k]: x } as JsonObject, { ignoreUnknownFields: true });
      kept[k] = x as JsonObject[string];
    } catch {
      // dropped: the binary form cannot say it
    }
  }
  const message = fromJson(schema, kept, { ignoreUnknownFields: true });
  return withInvalidUtf8(toBinary(schema, message));
}

function damage(bytes: Uint8Array, how: WireRequest["damage"]): Uint8Array {
  switch (how) {
    case "none":
      return bytes;
    case "truncate":
      return bytes.slice(0, Math.max(0, bytes.length - 1 - (bytes.length >> 2)));
    case "garbage":
      return Uint8Array.from([...bytes, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a, 0xff]);
    case "length-lie":
      // A length-delimited field that claims more bytes than follow.
      return Uint8Array.from([...bytes, 0x0a, 0xff, 0xff, 0xff, 0x7f, 0x61]);
    case "deep":
      return Uint8Array.from([...bytes, ...deepMessage(20_000)]);
  }
}

/**
 * Field 1 as a message holding field 1 as a message, `depth` times: an
 * unknown or wrongly typed field to most schemas, but a parser must walk it.
 * Lengths are computed innermost first, so the bytes are built in one pass.
 */
function deepMessage(depth: number): number[] {
  const lengths = [0];
  for (let i = 1; i < depth; i++) lengths.push(lengths[i - 1]! + 1 + varint(lengths[i - 1]!).length);
  const out: number[] = [];
  for (let i = depth - 1; i >= 0; i--) out.push(0x0a, ...varint(lengths[i]!));
  return out;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** The same harms, to a JSON body. */
function damageJson(bytes: Uint8Array, how: Damage): Uint8Array {
  switch (how) {
    case "none":
    case "length-lie":
      return bytes;
    case "truncate":
      return bytes.slice(0, Math.max(0, bytes.length - 1 - (bytes.length >> 2)));
    case "garbage":
      return Uint8Array.from([...bytes, 0x2c, 0x7b, 0xff, 0x22]);
    case "deep":
      // 50,000 nested arrays: deeper than a recursive parser's stack.
      return new TextEncoder().encode(`{"x":${"[".repeat(50_000)}${"]".repeat(50_000)}}`);
  }
}

function envelope(payload: Uint8Array, flags: number): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** The payload of the last envelope with `flag` set, if the bytes are a well-formed envelope sequence. */
function lastEnvelope(bytes: Uint8Array, flag: number): Uint8Array | undefined {
  let found: Uint8Array | undefined;
  let i = 0;
  while (i + 5 <= bytes.length) {
    const len = new DataView(bytes.buffer, bytes.byteOffset + i + 1, 4).getUint32(0);
    if ((bytes[i]! & flag) === flag) found = bytes.slice(i + 5, i + 5 + len);
    i += 5 + len;
  }
  return found;
}

function jsonCode(text: string): string | undefined {
  try {
    const parsed = JSON.parse(text) as { code?: unknown; error?: { code?: unknown } };
    const code = parsed.error?.code ?? parsed.code;
    return typeof code === "string" ? code : undefined;
  } catch {
    return undefined;
  }
}

/** Path (variables filled from the message), query (other scalar fields) and body of a REST request. */
function restRequest(route: RestRoute, json: JsonObject, damaged: Damage): { url: string; body: Uint8Array | undefined } {
  const message = typeof json === "object" && json !== null && !Array.isArray(json) ? json : {};
  const pathValue = (fields: readonly { jsonName: string }[]) => {
    let x: unknown = message;
    for (const f of fields) x = x !== null && typeof x === "object" ? (x as Record<string, unknown>)[f.jsonName] : undefined;
    return typeof x === "string" || typeof x === "number" ? String(x) : "6f1b7e1e-0c4a-4d0e-9f5e-000000000002";
  };
  let variable = 0;
  const segments = route.template.segments.map((s) => {
    if (s.kind === "literal") return s.value;
    if (s.kind === "variable") return encodeURIComponent(pathValue(route.pathFields[variable++]!).toWellFormed());
    return "x";
  });
  let url = `/${segments.join("/")}${route.template.verb ? `:${route.template.verb}` : ""}`;
  const bound = new Set(route.pathFields.map((f) => f[0]!.jsonName));
  let body: string | undefined;
  if (route.body.kind === "all") body = JSON.stringify(message);
  else if (route.body.kind === "field") body = JSON.stringify(message[route.body.field.jsonName] ?? {});
  if (body !== undefined && damaged !== "none") body = new TextDecoder().decode(damageJson(new TextEncoder().encode(body), damaged));
  else {
    const query = new URLSearchParams();
    for (const f of route.method.input.fields) {
      if (bound.has(f.jsonName)) continue;
      const x = message[f.jsonName];
      for (const item of Array.isArray(x) ? x : [x]) {
        if (typeof item === "string" || typeof item === "number" || typeof item === "boolean") query.append(f.name, String(item));
      }
    }
    const qs = query.toString();
    if (qs) url += `?${qs}`;
  }
  // Percent-encoded, the invalid-UTF-8 marker becomes bytes that are not UTF-8 too.
  // A lone surrogate (U+FFFD once made well-formed) goes as its WTF-8 bytes, which are not UTF-8 either.
  url = url.replaceAll("%EE%80%80", "%FF%FE%C0").replaceAll("%EF%BF%BD", "%ED%A0%80");
  return { url, body: body === undefined ? undefined : withInvalidUtf8(new TextEncoder().encode(body)) };
}
