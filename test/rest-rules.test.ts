// REST transcoding (src/server/rest/) called straight, without a gateway:
// path templates, query strings, query values, the request JSON a route
// builds, the routes read from google.api.http options, the status of a
// refusal and the reading of a body. Every expectation is written out here,
// from google/api/http.proto's rules and the proto3 JSON mapping, not
// computed by the code under test. Over a real server the same rules are
// in rest.test.ts and the REST equivalence property.
import type { IncomingMessage, ServerResponse } from "node:http";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { create, createFileRegistry, type DescField, type DescMessage, type DescMethod, type DescMethodUnary, type DescService, type MessageInitShape, setExtension } from "@bufbuild/protobuf";
import {
  type DescriptorProtoSchema,
  type FieldDescriptorProtoSchema,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  file_google_protobuf_duration,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
  FileDescriptorProtoSchema,
  MethodOptionsSchema,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createConnectRouter, createContextValues, type HandlerContext } from "@connectrpc/connect";
import pino from "pino";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { AuditService } from "../gen/anvil/audit/v1/audit_pb.js";
import { OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { http } from "../gen/google/api/annotations_pb.js";
import { type HttpRule, HttpRuleSchema } from "../gen/google/api/http_pb.js";
import { jsonPath, protoPath, resolveFieldPath } from "../src/server/rest/field-path.js";
import { isJsonBodyType } from "../src/server/rest/json-body-type.js";
import { matchPathTemplate, parsePathTemplate, splitPath, templateSpecificity } from "../src/server/rest/path-template.js";
import { parseQueryString } from "../src/server/rest/query-string.js";
import { isQueryableMessage, queryValueToJson } from "../src/server/rest/query-values.js";
import { BodyTooLargeError, isBodyTooLarge, readRequestBody } from "../src/server/rest/request-body.js";
import { errorStatus, sendRestError } from "../src/server/rest/rest-errors.js";
import { Metrics } from "../src/metrics/metrics.js";
import { CallAuthenticator } from "../src/rpc/call-authenticator.js";
import { ClientAddresses } from "../src/rpc/client-address.js";
import { BodyLimits } from "../src/server/body-limits.js";
import { CallObserver } from "../src/server/call-observer.js";
import { composeUnaryCall } from "../src/server/fast-unary/unary-call.js";
import { buildRestRoutes, type RestRoute } from "../src/server/rest/rest-routes.js";
import { createRestHandler, type RestHandlerOptions, restRouteLabel } from "../src/server/rest/rest-handler.js";
import { servedAsJsonLines, serveJsonLines } from "../src/server/rest/rest-stream.js";
import { transcodeRequest } from "../src/server/rest/transcode.js";
import { apiServices } from "../src/server/services.js";
import { sseBindings, watchOperationSse } from "../src/server/sse/watch-operation-sse.js";
import { suiteHttpServer } from "./support/suite-http-server.js";

// ---------------------------------------------------------------------------
// A probe proto, built from a FileDescriptorProto the way generated code
// embeds one: a field of every kind a URL may or may not set.

const camel = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

type FieldInit = MessageInitShape<typeof FieldDescriptorProtoSchema>;

function field(name: string, number: number, type: Type, more: FieldInit = {}): FieldInit {
  return { name, number, type, label: Label.OPTIONAL, jsonName: camel(name), ...more };
}
const message = (name: string, typeName: string, number: number) => field(name, number, Type.MESSAGE, { typeName });
const repeated = (f: FieldInit): FieldInit => ({ ...f, label: Label.REPEATED });

const probeMessages: Array<MessageInitShape<typeof DescriptorProtoSchema>> = [
  {
    name: "Probe",
    field: [
      field("id", 1, Type.STRING),
      field("flag", 2, Type.BOOL),
      field("count", 3, Type.INT64),
      field("color", 4, Type.ENUM, { typeName: ".t.v1.Color" }),
      repeated(field("colors", 5, Type.ENUM, { typeName: ".t.v1.Color" })),
      repeated(field("tags", 6, Type.STRING)),
      repeated(message("labels", ".t.v1.Probe.LabelsEntry", 7)),
      message("inner_part", ".t.v1.Inner", 8),
      message("limit", ".google.protobuf.Int32Value", 9),
      message("enabled", ".google.protobuf.BoolValue", 10),
      message("since", ".google.protobuf.Timestamp", 11),
      message("wait", ".google.protobuf.Duration", 12),
      message("update_mask", ".google.protobuf.FieldMask", 13),
      message("extra", ".google.protobuf.Struct", 14),
      repeated(message("items", ".t.v1.Inner", 15)),
      message("note", ".google.protobuf.StringValue", 16),
      repeated(message("times", ".google.protobuf.Timestamp", 17)),
      message("any_value", ".google.protobuf.Value", 18),
      message("list", ".google.protobuf.ListValue", 19),
      message("fake", ".t.v1.FakeValue", 20),
    ],
    nestedType: [
      {
        name: "LabelsEntry",
        field: [field("key", 1, Type.STRING), field("value", 2, Type.STRING)],
        options: { mapEntry: true },
      },
    ],
  },
  { name: "Inner", field: [field("name", 1, Type.STRING), field("display_name", 2, Type.STRING), message("deep", ".t.v1.Deep", 3)] },
  { name: "Deep", field: [field("value", 1, Type.STRING)] },
  // Named like a wrapper, shaped like one, but not google.protobuf's: a message, not a value.
  { name: "FakeValue", field: [field("value", 1, Type.STRING)] },
  { name: "Empty" },
];

const rule = (init: MessageInitShape<typeof HttpRuleSchema>): HttpRule => create(HttpRuleSchema, init);

/**
 * A service `t.v1.ProbeService` with one method per entry of `rules` (`Probe` in, `Empty` out), each with its
 * google.api.http rule (none when undefined); unary unless `streaming` names it a server or client stream.
 */
function probeService(rules: Record<string, HttpRule | undefined>, streaming: Readonly<Record<string, "server" | "client">> = {}): DescService {
  const file = create(FileDescriptorProtoSchema, {
    name: "t/v1/probe.proto",
    package: "t.v1",
    syntax: "proto3",
    dependency: [
      "google/protobuf/wrappers.proto",
      "google/protobuf/timestamp.proto",
      "google/protobuf/duration.proto",
      "google/protobuf/field_mask.proto",
      "google/protobuf/struct.proto",
    ],
    messageType: probeMessages,
    enumType: [{ name: "Color", value: ["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_BLUE"].map((name, number) => ({ name, number })) }],
    service: [
      {
        name: "ProbeService",
        method: Object.entries(rules).map(([name, r]) => {
          const options = create(MethodOptionsSchema);
          if (r) setExtension(options, http, r);
          const kind = streaming[name];
          return {
            name,
            inputType: ".t.v1.Probe",
            outputType: name === "Listed" ? ".t.v1.Probe" : ".t.v1.Empty",
            options,
            serverStreaming: kind === "server",
            clientStreaming: kind === "client",
          };
        }),
      },
    ],
  });
  const wkt = new Map([file_google_protobuf_wrappers, file_google_protobuf_timestamp, file_google_protobuf_duration, file_google_protobuf_field_mask, file_google_protobuf_struct].map((f) => [f.name, f]));
  const service = createFileRegistry(file, (name) => wkt.get(name.replace(/\.proto$/, ""))).getService("t.v1.ProbeService");
  if (!service) throw new Error("descriptor did not build");
  return service;
}

const service = probeService({ Get: rule({ pattern: { case: "get", value: "/v1/probes/{id}" } }) });
const probe: DescMessage = service.methods[0]!.input;
/** The probe's field at a dotted proto path. */
const at = (path: string): DescField[] => {
  const fields = resolveFieldPath(probe, path.split("."));
  if (!fields) throw new Error(`no field ${path}`);
  return fields;
};
const leaf = (path: string) => at(path).at(-1)!;

/** A route of the probe's method: the template, its body mapping, and the fields its variables bind. */
function route(httpMethod: string, source: string, body: RestRoute["body"] = { kind: "none" }): RestRoute {
  const template = parsePathTemplate(source);
  return { httpMethod, template, method: service.methods[0]!, pathFields: template.variables.map((v) => at(v.join("."))), body, responseBody: undefined };
}

/** The INVALID_ARGUMENT message `work` throws. */
function refusal(work: () => unknown): string {
  try {
    work();
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    return (err as ConnectError).rawMessage;
  }
  throw new Error("not refused");
}

// ---------------------------------------------------------------------------

describe("path templates", () => {
  it("parses literals, wildcards, variables with and without sub-templates, and a verb", () => {
    expect(parsePathTemplate("/v1/users/{user.id}")).toEqual({
      source: "/v1/users/{user.id}",
      segments: [
        { kind: "literal", value: "v1" },
        { kind: "literal", value: "users" },
        { kind: "variable", fieldPath: ["user", "id"], segments: [{ kind: "wildcard" }] },
      ],
      verb: undefined,
      variables: [["user", "id"]],
    });
    const named = parsePathTemplate("/v1/{name=projects/*/files/**}:run");
    expect(named.verb).toBe("run");
    expect(named.segments).toEqual([
      { kind: "literal", value: "v1" },
      { kind: "variable", fieldPath: ["name"], segments: [{ kind: "literal", value: "projects" }, { kind: "wildcard" }, { kind: "literal", value: "files" }, { kind: "rest" }] },
    ]);
    expect(parsePathTemplate("/v1/*/x/**").segments).toEqual([{ kind: "literal", value: "v1" }, { kind: "wildcard" }, { kind: "literal", value: "x" }, { kind: "rest" }]);
    expect(parsePathTemplate("/v1/{a}/{b_2}").variables).toEqual([["a"], ["b_2"]]);
    // A ":" inside braces is no verb.
    expect(parsePathTemplate("/v1/{name=a:b}").verb).toBeUndefined();
    expect(parsePathTemplate("/v1:ping")).toMatchObject({ verb: "ping", segments: [{ kind: "literal", value: "v1" }] });
    expect(parsePathTemplate("/v1/x:a.b~c-d_9").verb).toBe("a.b~c-d_9");
  });

  it.each([
    ["no leading slash", "v1/x"],
    ["an empty verb", "/v1/x:"],
    ["a verb with a space", "/v1/x:do it"],
    ["a verb with a slash", "/v1/x:a/b"],
    ["** before the end", "/v1/**/x"],
    ["** inside a variable before the end", "/v1/{a=**}/x"],
    ["** ending a variable before the end", "/v1/{a=x/**}/y"],
    ["a variable with a bad name", "/v1/{1a}"],
    ["a variable with an empty path step", "/v1/{a..b}"],
    ["a variable with a dash", "/v1/{a-b}"],
    ["a variable inside a variable", "/v1/{a={b}}"],
    ["an empty segment", "/v1//x"],
    ["a trailing slash", "/v1/"],
    ["a literal with a star", "/v1/a*"],
  ])("refuses %s", (_, source) => {
    expect(() => parsePathTemplate(source)).toThrow(source);
  });

  it("names a segment that is neither a literal nor a variable", () => {
    expect(() => parsePathTemplate("/v1/a}")).toThrow('bad segment "a}" in path template /v1/a}');
    expect(() => parsePathTemplate("/v1/{a")).toThrow('bad segment "{a" in path template /v1/{a');
  });

  it("binds a single-segment variable fully decoded, and a multi-segment one with its slashes, each segment decoded", () => {
    const byId = parsePathTemplate("/v1/users/{id}");
    expect(matchPathTemplate(byId, "/v1/users/a%20b%2Fc")).toEqual(new Map([["id", "a b/c"]]));
    expect(matchPathTemplate(byId, "/v1/users/u1")).toEqual(new Map([["id", "u1"]]));
    const named = parsePathTemplate("/v1/{name=projects/*/things/*}");
    expect(matchPathTemplate(named, "/v1/projects/p%201/things/t2")).toEqual(new Map([["name", "projects/p 1/things/t2"]]));
    const nested = parsePathTemplate("/v1/{a.b}/{c}");
    expect(matchPathTemplate(nested, "/v1/x/y")).toEqual(new Map([["a.b", "x"], ["c", "y"]]));
  });

  it("matches only paths with exactly the template's segments", () => {
    const byId = parsePathTemplate("/v1/users/{id}");
    for (const path of ["/v1/users", "/v1/users/", "/v1/users/a/b", "/v1/user/a", "/v2/users/a", "v1/users/a", "/v1//users/a", "/v1/users/%ZZ"]) {
      expect(matchPathTemplate(byId, path), path).toBeUndefined();
    }
    const star = parsePathTemplate("/v1/*");
    expect(matchPathTemplate(star, "/v1/x")).toEqual(new Map());
    expect(matchPathTemplate(star, "/v1")).toBeUndefined();
    // A variable whose own segments do not match fails the whole match, whatever follows it.
    expect(matchPathTemplate(parsePathTemplate("/v1/{a=x}"), "/v1")).toBeUndefined();
    expect(matchPathTemplate(parsePathTemplate("/v1/{a=x}/**"), "/v1/y/z")).toBeUndefined();
    expect(matchPathTemplate(parsePathTemplate("/v1/{a=x}/**"), "/v1/x/z")).toEqual(new Map([["a", "x"]]));
  });

  it("lets ** match any number of segments, but a variable at least one", () => {
    const rest = parsePathTemplate("/v1/**");
    expect(matchPathTemplate(rest, "/v1")).toEqual(new Map());
    expect(matchPathTemplate(rest, "/v1/a/b/c")).toEqual(new Map());
    const files = parsePathTemplate("/v1/files/{path=**}");
    expect(matchPathTemplate(files, "/v1/files/a/b%20c")).toEqual(new Map([["path", "a/b c"]]));
    expect(matchPathTemplate(files, "/v1/files")).toBeUndefined();
  });

  it("takes a verb only from the raw last segment: an encoded colon is part of the value", () => {
    const deploy = parsePathTemplate("/v1/ipas/{id}:deploy");
    expect(matchPathTemplate(deploy, "/v1/ipas/i%201:deploy")).toEqual(new Map([["id", "i 1"]]));
    expect(matchPathTemplate(deploy, "/v1/ipas/i1")).toBeUndefined();
    expect(matchPathTemplate(deploy, "/v1/ipas/i1:run")).toBeUndefined();
    expect(matchPathTemplate(deploy, "/v1/ipas/i1%3Adeploy")).toBeUndefined();
    expect(matchPathTemplate(deploy, "/v1/ipas/:deploy")).toBeUndefined();
    expect(matchPathTemplate(deploy, "/v1/ipas/%ZZ:deploy")).toBeUndefined();
    expect(matchPathTemplate(deploy, "/v1/%ZZ/i1:deploy")).toBeUndefined();
    // Without a verb in the template, a colon is part of the last segment.
    expect(matchPathTemplate(parsePathTemplate("/v1/ipas/{id}"), "/v1/ipas/i1:deploy")).toEqual(new Map([["id", "i1:deploy"]]));
    expect(matchPathTemplate(parsePathTemplate("/v1:ping"), "/v1:ping")).toEqual(new Map());
  });

  it("splits a path once, keeping the raw segments beside the decoded ones", () => {
    expect(splitPath("/a%2Fb/c")).toEqual({ raw: ["a%2Fb", "c"], decoded: ["a/b", "c"] });
    expect(splitPath("/a/%E0%A4%A")).toEqual({ raw: ["a", "%E0%A4%A"], decoded: undefined });
    expect(splitPath("a/b")).toBeUndefined();
    expect(splitPath("/")).toEqual({ raw: [""], decoded: [""] });
  });

  it("ranks a verb over literals, literals over fewer literals, and each ** lower", () => {
    const rank = (source: string) => templateSpecificity(parsePathTemplate(source));
    expect(rank("/v1/ipas/{id}:deploy")).toBe(1_002_000);
    expect(rank("/v1/ipas/{id}")).toBe(2_000);
    expect(rank("/v1/{name=projects/*/things/*}")).toBe(3_000);
    expect(rank("/v1/files/{path=**}")).toBe(1_999);
    expect(rank("/v1/**")).toBe(999);
    expect(rank("/{a}")).toBe(0);
  });
});

describe("query strings", () => {
  const pairs = (raw: string) => [...parseQueryString(raw)];

  it("reads pairs as a form does: `+` is a space, a name alone has an empty value, empty pairs are skipped", () => {
    expect(pairs("")).toEqual([]);
    expect(pairs("a=1&&b&c=&=d&e=f=g")).toEqual([
      ["a", "1"],
      ["b", ""],
      ["c", ""],
      ["", "d"],
      ["e", "f=g"],
    ]);
    expect(pairs("a+b=c+d%2B")).toEqual([["a b", "c d+"]]);
    expect(parseQueryString("r=1&r=2").getAll("r")).toEqual(["1", "2"]);
    expect(pairs("q=%C3%A9t%C3%A9&%41=%62")).toEqual([
      ["q", "été"],
      ["A", "b"],
    ]);
  });

  it("keeps a stray `%` as written, beside valid escapes", () => {
    expect(pairs("a=50%")).toEqual([["a", "50%"]]);
    expect(pairs("a=50%zz")).toEqual([["a", "50%zz"]]);
    expect(pairs("a=%C3%A9%")).toEqual([["a", "é%"]]);
    expect(pairs("a=%c3%a9%zz")).toEqual([["a", "é%zz"]]);
    expect(pairs("a=é%")).toEqual([["a", "é%"]]);
    expect(pairs("a=b%C3%A9%")).toEqual([["a", "bé%"]]);
    // Hex digits that follow no "%" are characters, not bytes.
    expect(pairs("a=0ff%C3%A9%")).toEqual([["a", "0ffé%"]]);
  });

  it.each([
    ["a byte that is not UTF-8", "a=%FF"],
    ["a byte that is not UTF-8, lower case", "a=%ff"],
    ["a bad byte beside a stray %", "a=%FF%"],
    ["a truncated sequence before a stray %", "a=%C3%zz"],
    ["a lead byte before a letter, beside a stray %", "a=%C3z%A9%"],
    ["an encoded surrogate", "a=%ED%A0%80"],
    ["a name that is not UTF-8", "%FF=1"],
  ])("refuses %s with INVALID_ARGUMENT", (_, raw) => {
    expect(refusal(() => parseQueryString(raw))).toBe("query string is not UTF-8");
  });
});

describe("query values", () => {
  it("writes scalars as proto3 JSON reads them: booleans as booleans, numbers as strings", () => {
    expect(queryValueToJson(leaf("flag"), "true")).toBe(true);
    expect(queryValueToJson(leaf("flag"), "false")).toBe(false);
    expect(queryValueToJson(leaf("flag"), "yes")).toBe("yes");
    expect(queryValueToJson(leaf("count"), "9007199254740993")).toBe("9007199254740993");
    expect(queryValueToJson(leaf("id"), "true")).toBe("true");
    expect(queryValueToJson(leaf("tags"), "a")).toBe("a");
  });

  it("writes enums by name, or by number when the value is an integer", () => {
    expect(queryValueToJson(leaf("color"), "COLOR_RED")).toBe("COLOR_RED");
    expect(queryValueToJson(leaf("color"), "2")).toBe(2);
    expect(queryValueToJson(leaf("color"), "-1")).toBe(-1);
    expect(queryValueToJson(leaf("color"), "12")).toBe(12);
    expect(queryValueToJson(leaf("color"), "2a")).toBe("2a");
    expect(queryValueToJson(leaf("color"), "a2")).toBe("a2");
    expect(queryValueToJson(leaf("colors"), "1")).toBe(1);
    expect(queryValueToJson(leaf("colors"), "COLOR_BLUE")).toBe("COLOR_BLUE");
  });

  it("writes the well-known messages that are one value: masks in lowerCamelCase, times, durations, wrappers", () => {
    expect(queryValueToJson(leaf("update_mask"), "display_name, inner_part.deep_2x,state")).toBe("displayName,innerPart.deep2x,state");
    expect(queryValueToJson(leaf("update_mask"), "Display_Name")).toBe("Display_Name");
    expect(queryValueToJson(leaf("since"), "2024-01-02T03:04:05Z")).toBe("2024-01-02T03:04:05Z");
    expect(queryValueToJson(leaf("wait"), "1.5s")).toBe("1.5s");
    expect(queryValueToJson(leaf("times"), "2024-01-02T03:04:05Z")).toBe("2024-01-02T03:04:05Z");
    expect(queryValueToJson(leaf("limit"), "5")).toBe("5");
    expect(queryValueToJson(leaf("enabled"), "true")).toBe(true);
    expect(queryValueToJson(leaf("note"), "true")).toBe("true");
  });

  it.each([
    ["a message", "inner_part", "field inner_part is a message; set its fields instead (for example inner_part.<field>=…)"],
    ["a list of messages", "items", "field items is a message; set its fields instead (for example items.<field>=…)"],
    ["a Struct", "extra", "field extra is a message; set its fields instead (for example extra.<field>=…)"],
    ["a Value (many fields, named like a wrapper)", "any_value", "field any_value is a message; set its fields instead (for example any_value.<field>=…)"],
    ["a ListValue (one field, not named value)", "list", "field list is a message; set its fields instead (for example list.<field>=…)"],
    ["a wrapper-shaped message outside google.protobuf", "fake", "field fake is a message; set its fields instead (for example fake.<field>=…)"],
    ["a map", "labels", "map field labels cannot be set from the URL"],
  ])("refuses %s", (_, name, message) => {
    expect(refusal(() => queryValueToJson(leaf(name), "x"))).toBe(message);
  });

  it("knows which messages are one value", () => {
    const queryable = ["since", "wait", "update_mask", "limit", "enabled", "note"];
    const messages = ["inner_part", "extra", "any_value", "list", "fake"];
    expect(queryable.map((n) => isQueryableMessage(leaf(n).message!))).toEqual(queryable.map(() => true));
    expect(messages.map((n) => isQueryableMessage(leaf(n).message!))).toEqual(messages.map(() => false));
  });
});

describe("field paths", () => {
  it("resolves proto and JSON names through singular messages only", () => {
    expect(protoPath(at("inner_part.deep.value"))).toBe("inner_part.deep.value");
    expect(jsonPath(at("innerPart.displayName"))).toEqual(["innerPart", "displayName"]);
    expect(resolveFieldPath(probe, ["inner_part", "nope"])).toBeUndefined();
    expect(resolveFieldPath(probe, ["nope"])).toBeUndefined();
    expect(resolveFieldPath(probe, ["id", "x"])).toBeUndefined();
    expect(resolveFieldPath(probe, ["items", "name"])).toBeUndefined();
    expect(resolveFieldPath(probe, [])).toEqual([]);
  });
});

describe("the request a route builds", () => {
  const transcode = (r: RestRoute, path: string, query = "", body = "") => {
    const bindings = matchPathTemplate(r.template, path);
    if (!bindings) throw new Error(`${path} does not match ${r.template.source}`);
    return transcodeRequest(r, bindings, parseQueryString(query), body);
  };

  it("binds path variables into nested fields, creating the messages on the way", () => {
    const r = route("GET", "/v1/probes/{inner_part.deep.value}/{id}");
    expect(transcode(r, "/v1/probes/d%201/p1")).toEqual({ innerPart: { deep: { value: "d 1" } }, id: "p1" });
  });

  it("takes the whole body for `*`, with the path winning over the body's value under either name", () => {
    const r = route("POST", "/v1/probes/{inner_part.display_name}:run", { kind: "all" });
    const body = JSON.stringify({ id: "b", flag: true, inner_part: { name: "n", display_name: "body" } });
    expect(transcode(r, "/v1/probes/path:run", "", body)).toEqual({ id: "b", flag: true, inner_part: { name: "n", displayName: "path" } });
    expect(transcode(r, "/v1/probes/path:run", "", JSON.stringify({ innerPart: null }))).toEqual({ innerPart: { displayName: "path" } });
    expect(transcode(r, "/v1/probes/path:run", "", JSON.stringify({ inner_part: null }))).toEqual({ innerPart: { displayName: "path" } });
    expect(transcode(r, "/v1/probes/path:run", "", " \n")).toEqual({ innerPart: { displayName: "path" } });
    expect(refusal(() => transcode(r, "/v1/probes/path:run", "id=1", "{}"))).toBe("query parameter id not allowed: the body carries the whole request");
    expect(refusal(() => transcode(r, "/v1/probes/path:run", "", "[]"))).toBe("request body must be a JSON object");
    expect(refusal(() => transcode(r, "/v1/probes/path:run", "", "null"))).toBe("request body must be a JSON object");
    expect(refusal(() => transcode(r, "/v1/probes/path:run", "", '"x"'))).toBe("request body must be a JSON object");
    expect(refusal(() => transcode(r, "/v1/probes/path:run", "", JSON.stringify({ innerPart: "x" })))).toBe("inner_part must be a JSON object");
  });

  it("puts the body in its field, and takes the other fields from the query", () => {
    const r = route("PATCH", "/v1/probes/{id}", { kind: "field", field: leaf("inner_part") });
    expect(transcode(r, "/v1/probes/p1", "update_mask=display_name&flag=true", JSON.stringify({ displayName: "x" }))).toEqual({
      innerPart: { displayName: "x" },
      id: "p1",
      updateMask: "displayName",
      flag: true,
    });
    expect(transcode(r, "/v1/probes/p1")).toEqual({ id: "p1" });
    expect(refusal(() => transcode(r, "/v1/probes/p1", "inner_part.name=x"))).toBe("query parameter inner_part.name sets a field already given by the path or body");
  });

  it("refuses a body on a route without one", () => {
    const r = route("GET", "/v1/probes/{id}");
    expect(refusal(() => transcode(r, "/v1/probes/p1", "", "{}"))).toBe("GET /v1/probes/{id} takes no request body");
    expect(refusal(() => transcode(route("POST", "/v1/probes", { kind: "all" }), "/v1/probes", "", "{nope"))).toMatch(/^request body is not valid JSON: /);
  });

  it("reads query parameters: nested, repeated, masks given once or many times", () => {
    const r = route("GET", "/v1/probes");
    expect(
      transcode(r, "/v1/probes", "inner_part.deep.value=v&innerPart.displayName=d&tags=a&tags=b&colors=COLOR_RED&colors=2&update_mask=a_b&update_mask=c&count=7&enabled=false"),
    ).toEqual({ innerPart: { deep: { value: "v" }, displayName: "d" }, tags: ["a", "b"], colors: ["COLOR_RED", 2], updateMask: "aB,c", count: "7", enabled: false });
    expect(transcode(r, "/v1/probes", "tags=only")).toEqual({ tags: ["only"] });
    expect(transcode(r, "/v1/probes", "fake.value=x")).toEqual({ fake: { value: "x" } });
  });

  it.each([
    ["an unknown parameter", "colour=red", "unknown query parameter colour for t.v1.Probe"],
    ["a sub-field of a non-message", "id.x=1", "unknown query parameter id.x for t.v1.Probe"],
    ["a sub-field of a time", "since.seconds=1", "query parameter since.seconds: since has no sub-fields to set"],
    ["a sub-field of a wrapper", "limit.value=1", "query parameter limit.value: limit has no sub-fields to set"],
    ["a singular field twice", "id=a&id=b", "query parameter id is not repeated but was given 2 times"],
    ["a time twice", "since=2024-01-01T00:00:00Z&since=2024-01-02T00:00:00Z", "query parameter since is not repeated but was given 2 times"],
    ["a map", "labels=x", "map field labels cannot be set from the URL"],
    ["a message", "inner_part=x", "field inner_part is a message; set its fields instead (for example inner_part.<field>=…)"],
  ])("refuses %s", (_, query, message) => {
    expect(refusal(() => transcode(route("GET", "/v1/probes"), "/v1/probes", query))).toBe(message);
  });

  it("refuses a query parameter that the path binds, or that contains or is contained in a bound field", () => {
    const r = route("GET", "/v1/probes/{inner_part.name}");
    for (const query of ["inner_part.name=x", "innerPart.name=x", "inner_part=x"]) {
      expect(refusal(() => transcode(r, "/v1/probes/n", query)), query).toMatch(/sets a field already given by the path or body$/);
    }
    expect(transcode(r, "/v1/probes/n", "inner_part.display_name=d&id=i")).toEqual({ innerPart: { name: "n", displayName: "d" }, id: "i" });
  });

  it("refuses what the request message cannot be: unknown fields, bad values, free-form JSON over its budget", () => {
    const r = route("POST", "/v1/probes", { kind: "all" });
    expect(refusal(() => transcode(r, "/v1/probes", "", JSON.stringify({ nickname: "x" })))).toMatch(/nickname/);
    expect(refusal(() => transcode(route("GET", "/v1/probes"), "/v1/probes", "count=many"))).toMatch(/count/);
    expect(refusal(() => transcode(route("GET", "/v1/probes"), "/v1/probes", "since=yesterday"))).toMatch(/^cannot decode message google.protobuf.Timestamp from JSON/);
    const wide = Object.fromEntries(Array.from({ length: 1_001 }, (_, i) => [`k${i}`, i]));
    expect(refusal(() => transcode(r, "/v1/probes", "", JSON.stringify({ extra: wide })))).toMatch(/extra/);
    expect(transcode(r, "/v1/probes", "", JSON.stringify({ extra: { a: [1, { b: null }] } }))).toEqual({ extra: { a: [1, { b: null }] } });
    // Duplicate keys are refused before JSON.parse would keep the last one.
    expect(refusal(() => transcode(r, "/v1/probes", "", '{"id":"a","id":"b"}'))).toMatch(/duplicate object key "id"/);
  });
});

describe("routes from google.api.http", () => {
  it("reads every pattern, the body and response body, and additional bindings; lists methods without a rule", () => {
    const s = probeService({
      Get: rule({ pattern: { case: "get", value: "/v1/probes/{id}" } }),
      Create: rule({ pattern: { case: "post", value: "/v1/probes" }, body: "*" }),
      Update: rule({
        pattern: { case: "patch", value: "/v1/probes/{inner_part.name}" },
        body: "inner_part",
        additionalBindings: [rule({ pattern: { case: "put", value: "/v1/probes/{id}:replace" }, body: "*" })],
      }),
      Remove: rule({ pattern: { case: "delete", value: "/v1/probes/{id}" } }),
      Head: rule({ pattern: { case: "custom", value: { kind: "head", path: "/v1/probes/{id}" } } }),
      Listed: rule({ pattern: { case: "get", value: "/v1/probes" }, responseBody: "tags" }),
      Bare: undefined,
    });
    const { routes, unannotated } = buildRestRoutes([s]);
    expect(unannotated.map((m) => m.name)).toEqual(["Bare"]);
    expect(routes.map((r) => [r.method.name, r.httpMethod, r.template.source, r.body.kind])).toEqual([
      ["Get", "GET", "/v1/probes/{id}", "none"],
      ["Create", "POST", "/v1/probes", "all"],
      ["Update", "PATCH", "/v1/probes/{inner_part.name}", "field"],
      ["Update", "PUT", "/v1/probes/{id}:replace", "all"],
      ["Remove", "DELETE", "/v1/probes/{id}", "none"],
      ["Head", "HEAD", "/v1/probes/{id}", "none"],
      ["Listed", "GET", "/v1/probes", "none"],
    ]);
    const update = routes[2]!;
    expect(update.body.kind === "field" && update.body.field.name).toBe("inner_part");
    expect(update.pathFields.map((fields) => protoPath(fields))).toEqual(["inner_part.name"]);
    expect(routes[0]!.responseBody).toBeUndefined();
    expect(routes[6]!.responseBody?.name).toBe("tags");
    expect(restRouteLabel(update)).toBe("PATCH /v1/probes/{inner_part.name}");
    expect(routes.map(servedAsJsonLines)).toEqual(routes.map(() => false));
  });

  it.each([
    ["no pattern", rule({}), "google.api.http of t.v1.ProbeService.M has no pattern"],
    ["a bad template", rule({ pattern: { case: "get", value: "/v1//x" } }), "/v1//x"],
    ["a variable naming no field", rule({ pattern: { case: "get", value: "/v1/{nope}" } }), "google.api.http of t.v1.ProbeService.M: path variable nope is not a singular scalar field of t.v1.Probe"],
    ["a variable naming no nested field", rule({ pattern: { case: "get", value: "/v1/{inner_part.nope}" } }), "path variable inner_part.nope is not a singular scalar field"],
    ["a variable naming a message", rule({ pattern: { case: "get", value: "/v1/{inner_part}" } }), "path variable inner_part is not a singular scalar field"],
    ["a variable naming a list", rule({ pattern: { case: "get", value: "/v1/{tags}" } }), "path variable tags is not a singular scalar field"],
    ["a body naming no field", rule({ pattern: { case: "post", value: "/v1/x" }, body: "nope" }), "google.api.http of t.v1.ProbeService.M: body nope is not a field of t.v1.Probe"],
    ["a body naming a JSON name", rule({ pattern: { case: "post", value: "/v1/x" }, body: "innerPart" }), "body innerPart is not a field"],
    ["a response body naming no field", rule({ pattern: { case: "get", value: "/v1/x" }, responseBody: "nope" }), "google.api.http of t.v1.ProbeService.M: response_body nope is not a field of t.v1.Empty"],
  ])("stops start-up on %s", (_, r, message) => {
    expect(() => buildRestRoutes([probeService({ M: r })])).toThrow(message);
  });
});

describe("refusals and bodies over HTTP", () => {
  let handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  const local = suiteHttpServer((req, res) => void handle(req, res));

  it("answers a refusal with the status of its code, 413 for a body too large and 415 for one it cannot decode", () => {
    const table: Array<[Code, number]> = [
      [Code.Canceled, 499],
      [Code.Unknown, 500],
      [Code.InvalidArgument, 400],
      [Code.DeadlineExceeded, 504],
      [Code.NotFound, 404],
      [Code.AlreadyExists, 409],
      [Code.PermissionDenied, 403],
      [Code.ResourceExhausted, 429],
      [Code.FailedPrecondition, 400],
      [Code.Aborted, 409],
      [Code.OutOfRange, 400],
      [Code.Unimplemented, 415],
      [Code.Internal, 500],
      [Code.Unavailable, 503],
      [Code.DataLoss, 500],
      [Code.Unauthenticated, 401],
    ];
    for (const [code, status] of table) expect(errorStatus(new ConnectError("x", code)), Code[code]).toBe(status);
    expect(errorStatus(new BodyTooLargeError(10))).toBe(413);
    expect(isBodyTooLarge(new BodyTooLargeError(10))).toBe(true);
    expect(isBodyTooLarge(new ConnectError("x", Code.ResourceExhausted))).toBe(false);
    expect(isBodyTooLarge(null)).toBe(false);
    expect(new BodyTooLargeError(10)).toMatchObject({ code: Code.ResourceExhausted, rawMessage: "request body larger than 10 bytes" });
  });

  it("sends a refusal as Connect's error JSON, details always present", async () => {
    handle = async (req, res) => {
      await sendRestError(req, res, new ConnectError("no such probe", Code.NotFound), 1_000_000);
    };
    const res = await fetch(`${local.url}/x`);
    expect([res.status, res.headers.get("content-type")]).toEqual([404, "application/json"]);
    expect(await res.json()).toEqual({ code: "not_found", message: "no such probe", details: [] });
    handle = async (req, res) => {
      await sendRestError(req, res, new ConnectError("too big", Code.ResourceExhausted), 1_000_000, 413);
    };
    const big = await fetch(`${local.url}/x`);
    expect(big.status).toBe(413);
    expect(await big.json()).toEqual({ code: "resource_exhausted", message: "too big", details: [] });
  });

  /** What readRequestBody made of a request: its text, or the code and message it refused with; and the bytes it was told of. */
  async function read(body: Uint8Array | string, headers: Record<string, string> = {}, maxBytes = 64) {
    let result: { text?: string; code?: string; message?: string; counted?: number } = {};
    handle = async (req, res) => {
      let counted = 0;
      try {
        result = { text: await readRequestBody(req, maxBytes, (n) => (counted += n)), counted };
      } catch (err) {
        const error = err as ConnectError;
        result = { code: Code[error.code], message: error.rawMessage, counted };
      }
      res.end();
    };
    const res = await fetch(`${local.url}/body`, { method: "POST", headers, body: body as BodyInit });
    await res.arrayBuffer();
    return result;
  }

  it("reads a body as UTF-8 text, decompressing gzip and br, counting the bytes read", async () => {
    expect(await read("{\"a\":\"é\"}")).toEqual({ text: '{"a":"é"}', counted: 10 });
    const gzipped = gzipSync('{"a":1}');
    expect(await read(gzipped, { "content-encoding": "gzip" })).toEqual({ text: '{"a":1}', counted: gzipped.byteLength });
    expect(await read(brotliCompressSync('{"b":2}'), { "content-encoding": " BR " })).toMatchObject({ text: '{"b":2}' });
    expect(await read("x", { "content-encoding": "identity" })).toMatchObject({ text: "x" });
    expect(await read("x", { "content-encoding": "" })).toMatchObject({ text: "x" });
    expect(await read("")).toEqual({ text: "", counted: 0 });
  });

  it("refuses a body over the limit, before or after decompression, one it cannot decode, and one that is not UTF-8", async () => {
    expect(await read("x".repeat(65))).toMatchObject({ code: "ResourceExhausted", message: "request body larger than 64 bytes", counted: 0 });
    expect(await read("x".repeat(64))).toMatchObject({ text: "x".repeat(64) });
    // Without a Content-Length, the count of bytes read decides.
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 3; i++) controller.enqueue(new TextEncoder().encode("x".repeat(30)));
        controller.close();
      },
    });
    handle = async (req, res) => {
      try {
        await readRequestBody(req, 64);
        res.end("read");
      } catch (err) {
        res.end((err as ConnectError).rawMessage);
      }
    };
    const streamed = await fetch(`${local.url}/body`, { method: "POST", body: chunked, duplex: "half" } as RequestInit);
    expect(await streamed.text()).toBe("request body larger than 64 bytes");
    expect(await read(gzipSync(" ".repeat(1_000)), { "content-encoding": "gzip" })).toMatchObject({ code: "ResourceExhausted", message: "request body larger than 64 bytes" });
    expect(await read("not gzip", { "content-encoding": "gzip" })).toMatchObject({ code: "InvalidArgument", message: "request body is not valid gzip" });
    expect(await read("x", { "content-encoding": "zstd" })).toMatchObject({ code: "Unimplemented", message: 'unsupported Content-Encoding "zstd"; use gzip, br or identity' });
    expect(await read(new Uint8Array([0x7b, 0xff, 0x7d]))).toMatchObject({ code: "InvalidArgument", message: "request body is not UTF-8" });
  });
});

describe("JSON bodies by Content-Type", () => {
  it.each([
    [undefined, true],
    ["application/json", true],
    ["APPLICATION/JSON; charset=utf-8", true],
    ["application/json ;charset=utf-8", true],
    ["application/merge-patch+json", true],
    ["application/vnd.api.v1+json", true],
    ["application/x-www-form-urlencoded", true],
    ["application/jsonx", false],
    ["application/json-seq", false],
    ["text/json", false],
    ["text/plain", false],
    ["application/x-www-form-urlencodedx", false],
    ["xapplication/json", false],
    ["application/+json", false],
    ["", false],
  ])("%s: %s", (type, expected) => {
    expect(isJsonBodyType(type)).toBe(expected);
  });
});

describe("the REST handler's routes", () => {
  const { routes } = buildRestRoutes(apiServices);
  const routesOf = (method: DescMethod) => routes.filter((r) => r.method === method);
  /** Builds the handler of `of` with `served`: start-up only looks up each route's method there, so the calls are never run. */
  const starting = (of: readonly RestRoute[], served: Partial<RestHandlerOptions>) => () =>
    createRestHandler({ routes: of, unaryCalls: new Map(), streamCalls: new Map(), sse: new Map(), streamHandlers: [], ...served } as RestHandlerOptions);
  const never = (() => {
    throw new Error("not called at start-up");
  }) as never;

  it("refuse to start without the RPC call of a unary route", () => {
    const getUser = routesOf(UserService.method.getUser);
    expect(starting(getUser, {})).toThrow("no RPC handler for anvil.users.v1.UserService.GetUser, which has a REST route");
    expect(starting(getUser, { unaryCalls: new Map([[UserService.method.getUser, never]]) })).not.toThrow();
  });

  it("refuse to start without connect's handler of a route served as JSON Lines", () => {
    const exportEvents = routesOf(AuditService.method.exportAuditEvents);
    expect(starting(exportEvents, {})).toThrow("no RPC handler for anvil.audit.v1.AuditService.ExportAuditEvents, which has a REST route");
    // connect's handlers of the service's methods, unimplemented: start-up only finds the method's.
    expect(starting(exportEvents, { streamHandlers: createConnectRouter().service(AuditService, {}).handlers })).not.toThrow();
  });

  it("refuse to start without the stream call or the server-sent events binding of a streaming GET route", () => {
    const method = OperationService.method.watchOperation;
    const watch = routesOf(method);
    const message = "no server-sent events binding for anvil.operations.v1.OperationService.WatchOperation, which has a GET route";
    expect(starting(watch, { streamCalls: new Map([[method, never]]) })).toThrow(message);
    expect(starting(watch, { sse: sseBindings })).toThrow(message);
    expect(starting(watch, { streamCalls: new Map([[method, never]]), sse: sseBindings })).not.toThrow();
  });

  describe("over HTTP", () => {
    // A unary method answering an empty Probe, each of its routes naming another unset field as the response body.
    const lister = probeService({
      Listed: rule({
        pattern: { case: "get", value: "/v1/probes/tags" },
        responseBody: "tags",
        additionalBindings: [
          rule({ pattern: { case: "get", value: "/v1/probes/inner" }, responseBody: "inner_part" }),
          rule({ pattern: { case: "get", value: "/v1/probes/labels" }, responseBody: "labels" }),
          rule({ pattern: { case: "get", value: "/v1/probes/id" }, responseBody: "id" }),
          rule({ pattern: { case: "post", value: "/v1/probes:list" }, body: "*" }),
        ],
      }),
    });
    const [listed] = lister.methods as [DescMethod];
    // A server stream with a GET route (served as server-sent events) and a POST one, and a client stream with a GET route.
    const streams = probeService(
      {
        Watch: rule({ pattern: { case: "get", value: "/v1/probes/{id}:watch" }, additionalBindings: [rule({ pattern: { case: "post", value: "/v1/probes/{id}:watch" }, body: "*" })] }),
        Upload: rule({ pattern: { case: "get", value: "/v1/probes/{id}:upload" } }),
      },
      { Watch: "server", Upload: "client" },
    );
    const [watch, upload] = streams.methods as [DescMethod, DescMethod];
    const metrics = new Metrics();
    let handle: (req: IncomingMessage, res: ServerResponse) => boolean;
    beforeAll(async () => {
      const log = pino({ level: "silent" });
      // `Listed` is public and its service unlimited: deciding its calls consults neither credentials nor the limiter,
      // which are left out, as is the refusal audit (none of these calls is refused). A streaming route that reached them would fail.
      const authenticator = new CallAuthenticator(undefined as never, new Map([[listed, { public: true, permission: "" }]]), {
        limiter: undefined as never,
        addresses: new ClientAddresses([]),
        unlimitedServices: new Set([lister.typeName]),
      });
      handle = createRestHandler({
        routes: buildRestRoutes([lister, streams]).routes,
        unaryCalls: new Map([[listed, composeUnaryCall(lister, listed as DescMethodUnary, () => ({}), [])]]),
        streamCalls: new Map([[watch, never]]),
        sse: new Map([[watch, watchOperationSse]]),
        streamHandlers: [],
        authenticator,
        bodyLimits: new BodyLimits(1024, [listed], new Map()),
        calls: new CallObserver(metrics.rpc, log),
        compressMinBytes: 1_000_000,
        log,
      } as Partial<RestHandlerOptions> as RestHandlerOptions);
    });
    const local = suiteHttpServer((req, res) => {
      if (!handle(req, res)) res.writeHead(404).end();
    });

    it("write out what proto3 JSON omits for an unset response body: [] for a list, {} for a message or a map, null for a scalar", async () => {
      const bodies: Record<string, unknown> = {};
      for (const name of ["tags", "inner", "labels", "id"]) {
        const res = await fetch(`${local.url}/v1/probes/${name}`);
        expect(res.status, name).toBe(200);
        bodies[name] = await res.json();
      }
      expect(bodies).toEqual({ tags: [], inner: {}, labels: {}, id: null });
    });

    it("count the request body bytes a call read, by its route", async () => {
      const body = JSON.stringify({ id: "counted" });
      const res = await fetch(`${local.url}/v1/probes:list`, { method: "POST", headers: { "content-type": "application/json" }, body });
      expect(res.status).toBe(200);
      // The call is counted once its answer is sent, which the client may see first.
      await vi.waitFor(async () => {
        const sum = (await metrics.text()).split("\n").find((l) => l.startsWith("grpc_server_request_bytes_sum{") && l.includes('http_route="POST /v1/probes:list"'));
        expect(sum?.split(" ").at(-1)).toBe(String(body.length));
      }, 10_000);
    });

    it("answer a streaming method's route that is neither JSON Lines nor a GET of server-sent events with UNIMPLEMENTED, counted as REST", async () => {
      const refusal = { code: "unimplemented", message: "streaming methods are not available over REST; call them with Connect or gRPC", details: [] };
      const posted = await fetch(`${local.url}/v1/probes/p1:watch`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect(posted.status).toBe(501);
      expect(await posted.json()).toEqual(refusal);
      const uploaded = await fetch(`${local.url}/v1/probes/p1:upload`);
      expect(uploaded.status).toBe(501);
      expect(await uploaded.json()).toEqual(refusal);
      const text = await metrics.text();
      for (const [method, route] of [
        [watch, "POST /v1/probes/{id}:watch"],
        [upload, "GET /v1/probes/{id}:upload"],
      ] as const) {
        expect(text).toContain(`grpc_method="${method.name}",protocol="rest",http_route="${route}"`);
      }
    });
  });
});

describe("a server stream served as JSON Lines", () => {
  // `Listed` streams Probes, and its route names their repeated `tags` as the response body.
  const lister = probeService({ Listed: rule({ pattern: { case: "get", value: "/v1/probes" }, responseBody: "tags" }) }, { Listed: "server" });
  const [listed] = lister.methods as [DescMethod];
  const [route] = buildRestRoutes([lister]).routes as [RestRoute];
  const metrics = new Metrics();
  /** What the stream's implementation does for the call in flight: set by each test. */
  let stream: (ctx: HandlerContext) => AsyncIterable<MessageInitShape<DescMessage>>;
  const listedHandler = createConnectRouter()
    .service(lister, { listed: (_req: unknown, ctx: HandlerContext) => stream(ctx) } as never)
    .handlers.find((h) => h.method === listed)!;
  /** connect's handler the calls run through: the stream's, unless a test swaps it. */
  let handler = listedHandler;
  /** The serving of the last call: what serveJsonLines let out, as the REST handler gets it. */
  let lastServed: Promise<void>;
  const local = suiteHttpServer((req, res) => {
    lastServed = serveJsonLines(req, res, route, {}, handler, createContextValues(), 1_000_000, metrics.rpc.begin(listed, "rest", "GET /v1/probes"));
    lastServed.catch(() => res.destroy());
  });

  it("writes every item of every message as a line, and an error after the first line as a last line naming it", async () => {
    stream = async function* () {
      yield { tags: ["a", "b"] };
      yield { tags: [] };
      yield { tags: ["c"] };
      throw new ConnectError("gone", Code.Unavailable);
    };
    const res = await fetch(local.url);
    expect([res.status, res.headers.get("content-type")]).toEqual([200, "application/x-ndjson"]);
    expect(await res.text()).toBe('"a"\n"b"\n"c"\n{"error":{"code":"Unavailable","message":"gone"}}\n');
  });

  it("answers an error before the first line with its status and JSON, and the request id of its trailers, else of its headers, else an empty one", async () => {
    stream = async function* () {
      yield* [];
      throw new ConnectError("no such probe", Code.NotFound, { "x-request-id": "from-trailers" });
    };
    const fromTrailers = await fetch(local.url);
    expect([fromTrailers.status, fromTrailers.headers.get("x-request-id")]).toEqual([404, "from-trailers"]);
    expect(await fromTrailers.json()).toEqual({ code: "not_found", message: "no such probe", details: [] });
    stream = async function* (ctx) {
      ctx.responseHeader.set("x-request-id", "from-headers");
      yield* [];
      throw new ConnectError("no such probe", Code.NotFound);
    };
    const fromHeaders = await fetch(local.url);
    expect([fromHeaders.status, fromHeaders.headers.get("x-request-id")]).toEqual([404, "from-headers"]);
    stream = async function* () {
      yield* [];
      // Trailers, but none naming the request.
      throw new ConnectError("no such probe", Code.NotFound, { "x-probe": "1" });
    };
    const none = await fetch(local.url);
    expect([none.status, none.headers.get("x-request-id")]).toEqual([404, ""]);
  });

  it("refuses a handler that answers no stream as INTERNAL, without a line", async () => {
    // connect's handler of a unary method answers the stream's request with 415 and no body stream.
    handler = createConnectRouter().service(AuditService, {}).handlers.find((h) => h.method === AuditService.method.listAuditEvents)!;
    try {
      await expect(fetch(local.url)).rejects.toThrow();
      await expect(lastServed).rejects.toThrow("[internal] stream answered with status 415");
    } finally {
      handler = listedHandler;
    }
  });

  it("ends the call's implementation when the client leaves while a line waits for the socket to drain", async () => {
    let ended!: () => void;
    const callEnded = new Promise<void>((resolve) => (ended = resolve));
    stream = async function* (ctx) {
      try {
        // A line larger than the socket's buffers; then nothing, until the call is cancelled.
        yield { tags: ["x".repeat(10_000_000)] };
        if (!ctx.signal.aborted) await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
      } finally {
        ended();
      }
    };
    const abort = new AbortController();
    const res = await fetch(local.url, { signal: abort.signal });
    await res.body!.getReader().read();
    abort.abort();
    await callEnded;
    await expect(lastServed).rejects.toThrow("client disconnected");
  });
});
