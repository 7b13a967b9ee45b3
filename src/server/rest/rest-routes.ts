import { type DescField, type DescMethod, type DescService, getOption, hasOption } from "@bufbuild/protobuf";
import { http } from "../../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../../gen/google/api/http_pb.js";
import { resolveFieldPath } from "./field-path.js";
import { type PathTemplate, parsePathTemplate } from "./path-template.js";

/** Where the HTTP body goes in the request message (`body` of the rule). */
export type BodyMapping =
  | { readonly kind: "none" }
  | { readonly kind: "all" } // body: "*"
  | { readonly kind: "field"; readonly field: DescField }; // body: "user"

/** One REST route: an HTTP method and path template bound to an RPC. */
export interface RestRoute {
  /** Upper case, e.g. `PATCH`. */
  readonly httpMethod: string;
  readonly template: PathTemplate;
  readonly method: DescMethod;
  /** Fields bound by the path's variables, outermost first, in template order. */
  readonly pathFields: readonly (readonly DescField[])[];
  readonly body: BodyMapping;
  /** The response field sent as the HTTP body (`response_body`), or the whole response. */
  readonly responseBody: DescField | undefined;
}

/** The REST routes of a set of services, and the methods that have none. */
export interface RestRouteTable {
  readonly routes: readonly RestRoute[];
  /** Methods without a `google.api.http` annotation; a test keeps this empty. */
  readonly unannotated: readonly DescMethod[];
}

/**
 * Reads the `google.api.http` option (and its additional bindings) of every
 * method of `services`. A malformed annotation — a template that does not
 * parse, a variable or body naming no field — stops startup, because a route
 * that silently never matches is worse than no server.
 */
export function buildRestRoutes(services: readonly DescService[]): RestRouteTable {
  const routes: RestRoute[] = [];
  const unannotated: DescMethod[] = [];
  for (const service of services) {
    for (const method of service.methods) {
      if (!hasOption(method, http)) {
        unannotated.push(method);
        continue;
      }
      const rule = getOption(method, http);
      for (const binding of [rule, ...rule.additionalBindings]) routes.push(routeOf(method, binding));
    }
  }
  return { routes, unannotated };
}

function routeOf(method: DescMethod, rule: HttpRule): RestRoute {
  const where = `google.api.http of ${method.parent.typeName}.${method.name}`;
  const pattern = rule.pattern;
  let httpMethod: string;
  let path: string;
  switch (pattern.case) {
    case "custom":
      httpMethod = pattern.value.kind.toUpperCase();
      path = pattern.value.path;
      break;
    case undefined:
      throw new Error(`${where} has no pattern`);
    default:
      httpMethod = pattern.case.toUpperCase();
      path = pattern.value;
  }
  const template = parsePathTemplate(path);
  const pathFields = template.variables.map((variable) => {
    const fields = resolveFieldPath(method.input, variable);
    const leaf = fields?.at(-1);
    // Stryker disable next-line LogicalOperator: equivalent: a variable names at least one field, so `leaf` is undefined exactly when `fields` is
    if (!fields || !leaf || leaf.fieldKind !== "scalar") {
      throw new Error(`${where}: path variable ${variable.join(".")} is not a singular scalar field of ${method.input.typeName}`);
    }
    return fields;
  });
  let body: BodyMapping = { kind: "none" };
  if (rule.body === "*") body = { kind: "all" };
  else if (rule.body !== "") {
    const field = method.input.fields.find((f) => f.name === rule.body);
    if (!field) throw new Error(`${where}: body ${rule.body} is not a field of ${method.input.typeName}`);
    body = { kind: "field", field };
  }
  let responseBody: DescField | undefined;
  if (rule.responseBody !== "") {
    responseBody = method.output.fields.find((f) => f.name === rule.responseBody);
    if (!responseBody) throw new Error(`${where}: response_body ${rule.responseBody} is not a field of ${method.output.typeName}`);
  }
  return { httpMethod, template, method, pathFields, body, responseBody };
}
