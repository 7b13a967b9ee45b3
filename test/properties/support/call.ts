// One way to call any method of any service by its descriptor, over any of
// the five protocol families, and read back the answer as proto3 JSON: the
// properties walk the descriptors, so they cannot use typed clients.
import { type DescMethod, fromJson, type JsonObject, type JsonValue, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { RestRoute } from "../../../src/server/rest/rest-routes.js";
import { type Protocol, transportFor } from "../../support/clients.js";

/** The protocol families the gateway serves on its one port, REST included. */
export type Family = Protocol | "rest";
export const families: readonly Family[] = ["connect-json", "connect-binary", "grpc", "grpc-web", "rest"];

/** What a call answered: its code as Connect spells it (`ok`, `not_found`, …), and the message or error. */
export interface Answer {
  readonly code: string;
  /** The response (all messages of a stream, as an array) in proto3 JSON; undefined on error. */
  readonly json?: JsonValue;
  /** The error message, on error. */
  readonly message?: string;
}

/** `Code.NotFound` → `not_found`, as Connect and the REST error body spell it. */
export function codeName(code: Code): string {
  return Code[code]!.replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c.toLowerCase());
}

/**
 * Calls `method` with the request `json` over a Connect, gRPC or gRPC-Web
 * transport. A server stream is read to its end and answered as the array of
 * its messages.
 */
export async function callRpc(protocol: Protocol, baseUrl: string, token: string, method: DescMethod, json: JsonObject): Promise<Answer> {
  const client = createClient(method.parent, transportFor(protocol, baseUrl, token)) as unknown as Record<string, (req: unknown, o?: object) => unknown>;
  const request = fromJson(method.input, json);
  try {
    if (method.methodKind === "client_streaming") {
      // A client stream gets the request as its only message (for an upload: a header, and no content).
      const res = await (client[method.localName]!((async function* () { yield request; })(), { timeoutMs: 20_000 }) as Promise<never>);
      return { code: "ok", json: toJson(method.output, res) };
    }
    if (method.methodKind === "server_streaming") {
      const out: JsonValue[] = [];
      for await (const m of client[method.localName]!(request, { timeoutMs: 10_000 }) as AsyncIterable<never>) out.push(toJson(method.output, m));
      return { code: "ok", json: out };
    }
    const res = await (client[method.localName]!(request, { timeoutMs: 20_000 }) as Promise<never>);
    return { code: "ok", json: toJson(method.output, res) };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: codeName(e.code), message: e.rawMessage };
  }
}

/**
 * Calls a REST route as a client of the `google.api.http` annotation would:
 * path variables filled from the message and left out of the body, the body
 * (`*` or one field) as JSON, every other scalar field in the query string.
 * The answer of a route with `response_body` is that field, as REST sends it.
 */
export async function callRest(baseUrl: string, token: string, route: RestRoute, json: JsonObject): Promise<Answer> {
  const message = structuredClone(json) as Record<string, JsonValue>;
  let variable = 0;
  const segments = route.template.segments.map((s) => {
    if (s.kind === "literal") return s.value;
    if (s.kind !== "variable") throw new Error(`${route.template.source}: wildcard segments are not supported here`);
    const path = route.pathFields[variable++]!;
    // Take the value out of the message: a bound field travels in the path only.
    let holder: Record<string, JsonValue> = message;
    for (const f of path.slice(0, -1)) holder = (holder[f.jsonName] ?? {}) as Record<string, JsonValue>;
    const leaf = path.at(-1)!.jsonName;
    const value = holder[leaf];
    delete holder[leaf];
    return encodeURIComponent(String(value ?? ""));
  });
  let url = `${baseUrl}/${segments.join("/")}${route.template.verb ? `:${route.template.verb}` : ""}`;
  let body: string | undefined;
  if (route.body.kind === "all") body = JSON.stringify(message);
  else if (route.body.kind === "field") body = JSON.stringify(message[route.body.field.jsonName] ?? {});
  if (route.body.kind !== "all") {
    const query = new URLSearchParams();
    for (const [k, x] of Object.entries(message)) {
      if (route.body.kind === "field" && k === route.body.field.jsonName) continue;
      for (const item of Array.isArray(x) ? x : [x]) {
        if (typeof item === "string" || typeof item === "number" || typeof item === "boolean") query.append(k, String(item));
      }
    }
    if (query.size) url += `?${query}`;
  }
  const res = await fetch(url, {
    method: route.httpMethod,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(20_000),
  });
  if (res.status < 400 && res.headers.get("content-type")?.startsWith("text/event-stream")) {
    // A stream served as server-sent events: its first event, then the stream is let go.
    return { code: "ok", json: await firstServerSentEvent(res) };
  }
  const text = await res.text();
  if (res.status < 400 && res.headers.get("content-type") === "application/x-ndjson") {
    // A stream served as JSON Lines: its lines, as an array.
    return { code: "ok", json: text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as JsonValue) };
  }
  const parsed = text ? (JSON.parse(text) as JsonValue) : {};
  if (res.status >= 400) {
    const err = parsed as { code?: string; message?: string };
    return { code: err.code ?? `http_${res.status}`, message: err.message ?? text };
  }
  return { code: "ok", json: parsed };
}

/** Calls `method` over `family`; REST through the method's first route. */
export function callOver(family: Family, baseUrl: string, token: string, method: DescMethod, json: JsonObject, routes: readonly RestRoute[]): Promise<Answer> {
  if (family !== "rest") return callRpc(family, baseUrl, token, method, json);
  const route = routes.find((r) => r.method === method);
  // A method without a REST route (the artifact streams: their HTTP routes are plain PUT and GET, not transcoded JSON) answers over RPC.
  if (!route) return callRpc("connect-json", baseUrl, token, method, json);
  return callRest(baseUrl, token, route, json);
}

/** The first event of a `text/event-stream` answer as `{event, id, data}` (data parsed as JSON); the rest of the stream is cancelled. */
async function firstServerSentEvent(res: Response): Promise<JsonObject> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    for (;;) {
      const frameEnd = text.indexOf("\n\n");
      // Comment lines (keep-alives) are frames of their own; skip them.
      if (frameEnd !== -1 && text.slice(0, frameEnd).split("\n").every((l) => l.startsWith(":"))) {
        text = text.slice(frameEnd + 2);
        continue;
      }
      if (frameEnd !== -1) {
        const fields: Record<string, string> = {};
        for (const line of text.slice(0, frameEnd).split("\n")) {
          const colon = line.indexOf(":");
          if (colon > 0) fields[line.slice(0, colon)] = (fields[line.slice(0, colon)] ?? "") + line.slice(colon + 1).replace(/^ /, "");
        }
        return { event: fields.event ?? "message", id: fields.id ?? null, data: fields.data === undefined ? null : (JSON.parse(fields.data) as JsonValue) };
      }
      const { done, value } = await reader.read();
      if (done) throw new Error(`event stream ended before its first event: ${JSON.stringify(text)}`);
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
