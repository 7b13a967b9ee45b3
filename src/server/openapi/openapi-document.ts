import { type DescField, type DescMessage, type DescService, hasOption } from "@bufbuild/protobuf";
import { permission } from "../../../gen/anvil/api/v1/annotations_pb.js";
import { protoPath } from "../rest/field-path.js";
import type { TemplateSegment } from "../rest/path-template.js";
import { isQueryableMessage } from "../rest/query-values.js";
import { buildRestRoutes, type RestRoute } from "../rest/rest-routes.js";
import { servedAsJsonLines } from "../rest/rest-stream.js";
import { type Schema, SchemaCollector } from "./json-schema.js";
import { protoComment } from "./proto-comments.js";
import { transportPaths } from "./transport-paths.js";
import { artifactPaths } from "./artifact-paths.js";
import { WorkerService } from "../../../gen/anvil/operations/v1/operations_pb.js";

/** Options of buildOpenApiDocument. */
export interface OpenApiOptions {
  readonly title: string;
  readonly version: string;
  readonly description?: string;
}

/** The OpenAPI path of a route: `{user.id}` stays a named parameter, a custom verb stays a literal suffix. */
export function openApiPath(route: RestRoute): string {
  const text = (segments: readonly TemplateSegment[]): string =>
    segments
      .map((s) => (s.kind === "literal" ? s.value : s.kind === "variable" ? `{${s.fieldPath.join(".")}}` : s.kind === "wildcard" ? "*" : "**"))
      .join("/");
  return `/${text(route.template.segments)}${route.template.verb !== undefined ? `:${route.template.verb}` : ""}`;
}

const connectCodes = [
  "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied",
  "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal", "unavailable",
  "data_loss", "unauthenticated",
];

/**
 * Builds the OpenAPI 3.1 document of `services` from their descriptors:
 * one operation per `google.api.http` binding (the same route table the
 * REST handler serves) and the artifact routes, schemas per the proto3 JSON mapping, descriptions
 * from the proto comments when the descriptors carry source info (see
 * src/cli/openapi.ts), bearer authentication, and the error shape.
 */
export function buildOpenApiDocument(services: readonly DescService[], options: OpenApiOptions): Schema {
  const collector = new SchemaCollector();
  const paths: Record<string, Record<string, Schema>> = {};
  const { routes } = buildRestRoutes(services);
  const seen = new Map<string, number>();
  for (const route of routes) {
    const base = `${route.method.parent.name}_${route.method.name}`;
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    const path = openApiPath(route);
    paths[path] ??= {};
    paths[path][route.httpMethod.toLowerCase()] = operation(route, n === 0 ? base : `${base}_${n}`, collector);
  }
  Object.assign(paths, transportPaths(services, collector));
  // The artifact routes carry raw bytes, not transcoded JSON: described by hand.
  if (services.some((s) => s.typeName === WorkerService.typeName)) Object.assign(paths, artifactPaths(collector));
  return {
    openapi: "3.1.0",
    info: { title: options.title, version: options.version, ...(options.description ? { description: options.description } : {}) },
    tags: services.map((s) => ({ name: s.name, description: protoComment(s) ?? s.typeName })),
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      securitySchemes: {
        bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "A service-account token (HS256 JWT with `sub`, `tenant` and `roles`)." },
      },
      schemas: { ...sortKeys(collector.schemas), ...errorSchemas() },
    },
  };
}

function operation(route: RestRoute, operationId: string, collector: SchemaCollector): Schema {
  const method = route.method;
  const comment = protoComment(method);
  const parameters: Schema[] = route.pathFields.map((fields, i) => {
    const leaf = fields.at(-1)!;
    const name = route.template.variables[i]!.join(".");
    const format = pathFormat(route.template.segments, name);
    const description = [protoComment(leaf), format ? `Format: \`${format}\`.` : undefined].filter(Boolean).join(" ");
    return { name, in: "path", required: true, ...(description ? { description } : {}), schema: collector.scalarOrRef(leaf) };
  });
  if (route.body.kind !== "all") {
    const bound = new Set(route.pathFields.map((f) => protoPath(f)));
    if (route.body.kind === "field") bound.add(route.body.field.name);
    parameters.push(...queryParameters(method.input, "", bound, collector, new Set()));
  }
  const op: Schema = {
    operationId,
    tags: [method.parent.name],
    summary: comment?.split(/(?<=\.)\s/)[0] ?? method.name,
    ...(comment ? { description: comment } : {}),
    parameters,
    responses: {
      "200": servedAsJsonLines(route)
        ? {
            // JSON Lines: each line one item of the stream's messages' `response_body` list.
            description: `Success: JSON Lines, one item of the \`${route.responseBody!.name}\` of each ${method.output.typeName} per line.`,
            content: { "application/x-ndjson": { schema: collector.message(route.responseBody!.message!) } },
          }
        : {
            description: `Success: ${route.responseBody ? `the \`${route.responseBody.name}\` of ` : ""}${method.output.typeName}.`,
            content: { "application/json": { schema: route.responseBody ? collector.field(route.responseBody) : collector.message(method.output) } },
          },
      default: { description: "An error, with the HTTP status of its code.", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
    },
  };
  if (method.methodKind === "server_streaming" && route.httpMethod === "GET" && !servedAsJsonLines(route)) describeEventStream(op, route, collector);
  if (method.proto.options?.deprecated) op.deprecated = true;
  // An API method that declares no permission is public (SignInService): it needs no credential.
  if (!hasOption(method, permission)) op.security = [];
  if (route.body.kind !== "none") {
    op.requestBody = {
      required: true,
      content: { "application/json": { schema: route.body.kind === "all" ? collector.message(method.input) : collector.field(route.body.field) } },
    };
  }
  return op;
}

/**
 * A server-streaming method's GET route answers server-sent events
 * (src/server/sse/): the 200 is `text/event-stream`, a resume past the end
 * is 204, and — for browsers' EventSource, which sends no headers — the
 * credential may come as `access_token` and the resume point as
 * `Last-Event-ID`.
 */
function describeEventStream(op: Schema, route: RestRoute, collector: SchemaCollector): void {
  const output = collector.message(route.method.output);
  op.responses = {
    "200": {
      description:
        `Server-sent events, one per ${route.method.output.typeName} message: \`event: operation\` with the operation (proto3 JSON) first, ` +
        "then one event per operation event with `id:` its sequence, `event:` its kind (`progress`, `log`, `stage`, `completion`, `error`) " +
        "and `data:` the OperationEvent in proto3 JSON; keep-alives are comment lines. The stream ends after the completion event, or early " +
        "(a comment line says why) when the instance shuts down: reconnect with `Last-Event-ID`.",
      content: { "text/event-stream": { schema: { type: "string", description: "text/event-stream; each `data:` line holds proto3 JSON.", "x-message-schema": output } } },
    },
    "204": { description: "Nothing more will ever be sent: the operation is finished and the resume point is at or past its last event." },
    default: (op.responses as Record<string, Schema>).default,
  };
  (op.parameters as Schema[]).push(
    {
      name: "Last-Event-ID",
      in: "header",
      description: "Resume after this sequence (sent by EventSource when it reconnects); takes precedence over `after_sequence`.",
      schema: { type: "string", pattern: "^[0-9]+$" },
    },
    {
      name: "access_token",
      in: "query",
      description: "The bearer token (JWT or API key), for clients that cannot send an Authorization header (EventSource). Never logged.",
      schema: { type: "string" },
    },
  );
}

/** The pattern of a `{name=projects/*}` variable, shown to readers; undefined for a plain `{id}`. */
function pathFormat(segments: readonly TemplateSegment[], name: string): string | undefined {
  for (const s of segments) {
    if (s.kind !== "variable" || s.fieldPath.join(".") !== name) continue;
    if (s.segments.length === 1 && s.segments[0]!.kind === "wildcard") return undefined;
    return s.segments.map((x) => (x.kind === "literal" ? x.value : x.kind === "wildcard" ? "*" : "**")).join("/");
  }
  return undefined;
}

/** Query parameters of every field not bound by path or body: scalars, enums, repeated ones, and nested messages' fields as `a.b`. */
function queryParameters(message: DescMessage, prefix: string, bound: ReadonlySet<string>, collector: SchemaCollector, visiting: Set<string>): Schema[] {
  if (visiting.has(message.typeName)) return [];
  visiting.add(message.typeName);
  const out: Schema[] = [];
  for (const field of message.fields) {
    const name = `${prefix}${field.name}`;
    if (bound.has(name)) continue;
    if (queryable(field)) {
      const schema = collector.field(field);
      const description = schema.description;
      delete schema.description;
      delete schema.readOnly;
      out.push({ name, in: "query", ...(description ? { description } : {}), schema, ...(field.fieldKind === "list" ? { style: "form", explode: true } : {}) });
    } else if (field.fieldKind === "message" && ![...bound].some((b) => b.startsWith(`${name}.`))) {
      out.push(...queryParameters(field.message, `${name}.`, bound, collector, visiting));
    }
  }
  visiting.delete(message.typeName);
  return out;
}

function queryable(field: DescField): boolean {
  switch (field.fieldKind) {
    case "scalar":
    case "enum":
      return true;
    case "list":
      return field.listKind !== "message" || isQueryableMessage(field.message);
    case "message":
      return isQueryableMessage(field.message);
    case "map":
      return false;
  }
}

function errorSchemas(): Record<string, Schema> {
  return {
    Error: {
      type: "object",
      description: "An error, in the JSON form Connect uses for unary errors; the HTTP status is that of `code`.",
      required: ["code", "message"],
      properties: {
        code: { type: "string", enum: connectCodes, description: "The Connect (gRPC) code in snake_case." },
        message: { type: "string", description: "What went wrong, for developers." },
        details: { type: "array", items: { $ref: "#/components/schemas/ErrorDetail" }, description: "Typed details, e.g. google.rpc.BadRequest naming the invalid field." },
      },
    },
    ErrorDetail: {
      type: "object",
      required: ["type", "value"],
      properties: {
        type: { type: "string", description: "Fully-qualified proto message name of the detail, e.g. `google.rpc.BadRequest`." },
        value: { type: "string", contentEncoding: "base64", description: "The detail message, binary-encoded, base64 without padding." },
        debug: { description: "The detail message as proto3 JSON, when the server includes it." },
      },
    },
  };
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}
