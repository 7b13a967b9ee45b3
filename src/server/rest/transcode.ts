import { type DescField, fromJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { toConnectError } from "../../rpc/error-mapping.js";
import { overBudgetError, structBudgetOfJson } from "../../rpc/validation/struct-budget.js";
import { refuseObjects } from "../fast-unary/codec.js";
import { scanJsonObjects } from "../json-objects.js";
import { protoPath, resolveFieldPath } from "./field-path.js";
import type { PathBindings } from "./path-template.js";
import { isQueryableMessage, queryValueToJson } from "./query-values.js";
import type { RestRoute } from "./rest-routes.js";

/**
 * Builds the proto3 JSON request of `route`'s RPC from an HTTP request, by
 * the `google.api.http` rules: the body goes to the `body` field (or is the
 * whole message for `*`), path variables set their fields, and every other
 * field may come from the query string (`a.b=…`, `roles=a&roles=b`). The
 * result is checked against the request schema with unknown fields refused,
 * so a typo is INVALID_ARGUMENT rather than silently ignored.
 *
 * @example
 *   PATCH /v1/users/42?update_mask=display_name  {"displayName":"Ada"}
 *   → {"user":{"displayName":"Ada","id":"42"},"updateMask":"displayName"}
 */
export function transcodeRequest(route: RestRoute, bindings: PathBindings, query: URLSearchParams, body: string): JsonObject {
  const input = route.method.input;
  let json: JsonObject = {};
  const hasBody = body.trim() !== "";
  if (route.body.kind === "none" && hasBody) throw invalid(`${route.httpMethod} ${route.template.source} takes no request body`);
  // Stryker disable next-line ConditionalExpression,StringLiteral: equivalent: a body on a route without one was refused just above
  if (route.body.kind !== "none" && hasBody) {
    // Members bounded (and named once) before JSON.parse builds them.
    refuseObjects(input, scanJsonObjects(body));
    const parsed = parseJson(body);
    if (route.body.kind === "all") {
      if (!isObject(parsed)) throw invalid("request body must be a JSON object");
      json = parsed;
    } else {
      json[route.body.field.jsonName] = parsed;
    }
  }
  // Stryker disable next-line ArrayDeclaration: equivalent: a field path never has a space, so no parameter is bound to that text
  const bound: string[] = [];
  route.pathFields.forEach((fields, i) => {
    const name = route.template.variables[i]!.join(".");
    setAt(json, fields, queryValueToJson(fields.at(-1)!, bindings.get(name)!));
    bound.push(protoPath(fields));
  });
  if (route.body.kind === "field") bound.push(route.body.field.name);
  for (const name of new Set(query.keys())) {
    if (route.body.kind === "all") throw invalid(`query parameter ${name} not allowed: the body carries the whole request`);
    const fields = resolveFieldPath(input, name.split("."));
    if (!fields) throw invalid(`unknown query parameter ${name} for ${input.typeName}`);
    const path = protoPath(fields);
    if (bound.some((b) => b === path || path.startsWith(`${b}.`) || b.startsWith(`${path}.`))) {
      throw invalid(`query parameter ${name} sets a field already given by the path or body`);
    }
    setAt(json, fields, queryParameterToJson(name, fields, query.getAll(name)));
  }
  // Free-form JSON over its limits is refused before it is decoded (struct-budget.ts).
  const overBudget = structBudgetOfJson(input, json);
  // Stryker disable next-line StringLiteral: equivalent: the correlation id is only shown for INTERNAL, and this is INVALID_ARGUMENT
  if (overBudget) throw toConnectError(overBudgetError(overBudget), "");
  try {
    // Stryker disable next-line ObjectLiteral: equivalent: fromJson refuses unknown fields by default; stated because it is the point
    fromJson(input, json, { ignoreUnknownFields: false });
  } catch (err) {
    throw invalid(err instanceof Error ? err.message : String(err));
  }
  return json;
}

function queryParameterToJson(name: string, fields: DescField[], values: string[]): JsonValue {
  for (const f of fields.slice(0, -1)) {
    // Stryker disable next-line ConditionalExpression: equivalent: resolveFieldPath only steps through message fields
    if (f.fieldKind !== "message" || isQueryableMessage(f.message)) throw invalid(`query parameter ${name}: ${f.name} has no sub-fields to set`);
  }
  const leaf = fields.at(-1)!;
  if (leaf.fieldKind === "list") return values.map((v) => queryValueToJson(leaf, v));
  if (leaf.fieldKind === "message" && leaf.message.typeName === "google.protobuf.FieldMask") {
    // `update_mask=a&update_mask=b` is read as `update_mask=a,b`.
    return queryValueToJson(leaf, values.join(","));
  }
  if (values.length > 1) throw invalid(`query parameter ${name} is not repeated but was given ${values.length} times`);
  return queryValueToJson(leaf, values[0]!);
}

function setAt(json: JsonObject, fields: readonly DescField[], value: JsonValue): void {
  let target = json;
  for (const field of fields.slice(0, -1)) {
    const next = target[field.jsonName] ?? target[field.name];
    if (next === undefined || next === null) {
      const created: JsonObject = {};
      delete target[field.name];
      target[field.jsonName] = created;
      target = created;
    } else if (isObject(next)) {
      target = next;
    } else {
      throw invalid(`${field.name} must be a JSON object`);
    }
  }
  const leaf = fields.at(-1)!;
  // The path wins over the body: `PATCH /v1/users/{user.id}` acts on the
  // user the URL names, whatever id the body carries.
  delete target[leaf.name];
  target[leaf.jsonName] = value;
}

function parseJson(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw invalid(`request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
