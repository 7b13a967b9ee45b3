import type { DescMethod, JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAsyncIterable, readAllBytes, type UniversalHandler } from "@connectrpc/connect/protocol";
import type { Logger } from "pino";
import type { NodeRequest, NodeResponse, RouteHandler } from "../connect-handler.js";
import { sendBody } from "../http-compression.js";
import { setPrivateCaching } from "../private-caching.js";
import { type PathBindings, matchPathTemplate, templateSpecificity } from "./path-template.js";
import { readRequestBody } from "./request-body.js";
import { errorStatus, sendRestError } from "./rest-errors.js";
import type { RestRoute } from "./rest-routes.js";
import { transcodeRequest } from "./transcode.js";

/** Options of createRestHandler. */
export interface RestHandlerOptions {
  readonly routes: readonly RestRoute[];
  /** The Connect router's handlers; every REST call is dispatched into one. */
  readonly handlers: readonly UniversalHandler[];
  readonly maxRequestBytes: number;
  readonly compressMinBytes: number;
  readonly log: Logger;
}

/**
 * Request headers that describe the REST request's own encoding; the
 * synthesized Connect request states its own instead. Everything else —
 * Authorization, X-Request-Id, Connect-Timeout-Ms — is passed on unchanged.
 */
const ownHeaders = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "accept-encoding",
  "transfer-encoding",
  "connection",
  "connect-protocol-version",
  "connect-content-encoding",
  "connect-accept-encoding",
]);

/**
 * Serves the REST routes of the `google.api.http` annotations. A REST call
 * is transcoded into the JSON request of its RPC and dispatched into the very
 * Connect handler an RPC call reaches, as a Connect unary JSON request with
 * the caller's headers — so authentication, permissions, validation, limits,
 * logging and error mapping run exactly as for RPC, and REST can do nothing
 * an RPC call could not. The Connect response is mapped back: the status of
 * its code, the JSON body (or its `response_body` field).
 */
export function createRestHandler(options: RestHandlerOptions): RouteHandler {
  const byMethod = new Map<DescMethod, UniversalHandler>();
  for (const h of options.handlers) if (h.method) byMethod.set(h.method, h);
  const routes = [...options.routes].sort((a, b) => templateSpecificity(b.template) - templateSpecificity(a.template));
  for (const route of routes) {
    if (!byMethod.has(route.method)) throw new Error(`no RPC handler for ${route.method.parent.typeName}.${route.method.name}, which has a REST route`);
  }
  return (req, res) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    const matches: { route: RestRoute; bindings: PathBindings }[] = [];
    for (const route of routes) {
      const bindings = matchPathTemplate(route.template, path);
      if (bindings) matches.push({ route, bindings });
    }
    if (matches.length === 0) return false;
    const match = matches.find((m) => m.route.httpMethod === req.method);
    if (!match) {
      const allow = [...new Set(matches.map((m) => m.route.httpMethod))].join(", ");
      res.setHeader("allow", allow);
      sendRestError(req, res, new ConnectError(`${req.method} is not allowed on ${path}; use ${allow}`, Code.Unimplemented), options.compressMinBytes, 405);
      return true;
    }
    if (req.method === "GET") setPrivateCaching(res);
    const handler = byMethod.get(match.route.method)!;
    serve(req, res, match.route, match.bindings, new URLSearchParams(q === -1 ? "" : url.slice(q + 1)), handler, options).catch((err: unknown) => {
      options.log.debug({ err, path }, "REST response not completed");
      if (!res.headersSent) sendRestError(req, res, new ConnectError("internal error", Code.Internal), options.compressMinBytes);
    });
    return true;
  };
}

async function serve(
  req: NodeRequest,
  res: NodeResponse,
  route: RestRoute,
  bindings: PathBindings,
  query: URLSearchParams,
  handler: UniversalHandler,
  options: RestHandlerOptions,
): Promise<void> {
  if (route.method.methodKind !== "unary") {
    // A stream has no single JSON reply; such methods are served over Connect, gRPC and gRPC-Web only.
    sendRestError(req, res, new ConnectError("streaming methods are not available over REST; call them with Connect or gRPC", Code.Unimplemented), options.compressMinBytes);
    return;
  }
  let json: JsonObject;
  try {
    const type = req.headers["content-type"];
    if (type !== undefined && !/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(type)) {
      throw new ConnectError(`unsupported Content-Type ${JSON.stringify(type)}; send application/json`, Code.Unimplemented);
    }
    json = transcodeRequest(route, bindings, query, await readRequestBody(req, options.maxRequestBytes));
  } catch (err) {
    const error = ConnectError.from(err);
    // Refused before the RPC: the request never reached the interceptors, so log it here.
    options.log.info({ rest: `${req.method} ${route.template.source}`, code: Code[error.code], err: error.message }, "REST request refused");
    sendRestError(req, res, error, options.compressMinBytes, errorStatus(error));
    return;
  }
  const abort = new AbortController();
  res.once("close", () => abort.abort());
  const header = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name.startsWith(":") || ownHeaders.has(name)) continue;
    for (const v of Array.isArray(value) ? value : [value]) header.append(name, v);
  }
  header.set("content-type", "application/json");
  header.set("connect-protocol-version", "1");
  const uRes = await handler({
    httpVersion: req.httpVersion,
    method: "POST",
    url: new URL(handler.requestPath, "http://localhost").toString(),
    header,
    body: createAsyncIterable([new TextEncoder().encode(JSON.stringify(json))]),
    signal: abort.signal,
  });
  const bytes = uRes.body ? await readAllBytes(uRes.body, Number.MAX_SAFE_INTEGER) : new Uint8Array();
  const headers: Record<string, string> = { "content-type": "application/json" };
  uRes.header?.forEach((value, name) => {
    if (!name.startsWith("content-")) headers[name] = value;
  });
  const parsed = JSON.parse(new TextDecoder().decode(bytes) || "{}") as JsonObject;
  let out: JsonValue = parsed;
  if (uRes.status !== 200) out = { code: parsed.code ?? "unknown", message: parsed.message ?? "", details: parsed.details ?? [] };
  else if (route.responseBody) out = parsed[route.responseBody.jsonName] ?? emptyValue(route.responseBody.fieldKind);
  await sendBody(req, res, uRes.status, headers, new TextEncoder().encode(JSON.stringify(out)), options.compressMinBytes);
}

/** What proto3 JSON omits for an unset field, written out so `response_body` is never empty. */
function emptyValue(kind: string): JsonValue {
  if (kind === "list") return [];
  if (kind === "message" || kind === "map") return {};
  return null;
}
