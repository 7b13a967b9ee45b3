import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildOpenApiDocument, openApiPath } from "../src/server/openapi/openapi-document.js";
import { buildRestRoutes } from "../src/server/rest/rest-routes.js";
import { artifactHttpMethods } from "../src/server/artifacts/artifact-routes.js";
import { apiServices } from "../src/server/services.js";
import { databaseKinds } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

/** The document without the parts that only proto comments provide. */
function withoutProse(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutProse);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([k]) => k !== "description" && k !== "summary")
      .map(([k, v]) => [k, withoutProse(v)]),
  );
}

describe("OpenAPI", () => {
  it("fails when an RPC lacks a google.api.http annotation", () => {
    const { unannotated } = buildRestRoutes(apiServices);
    // The artifact streams are served by plain PUT and GET routes of their own (raw bytes), described by hand.
    const missing = unannotated.filter((m) => !artifactHttpMethods.has(m));
    expect(missing.map((m) => `${m.parent.typeName}.${m.name}`), "add a google.api.http option to these RPCs").toEqual([]);
  });
});

describe.each(databaseKinds)("GET /openapi.json on %s", (kind) => {
  let server: TestServer;
  let doc: Doc;
  beforeAll(async () => {
    server = await startServer(kind);
    const res = await fetch(`${server.baseUrl}/openapi.json`); // no token: the document is public
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    doc = await res.json();
  });
  afterAll(async () => {
    await server.close();
  });

  it("is a valid OpenAPI 3.1 document", async () => {
    expect(doc.openapi).toBe("3.1.0");
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("lists every REST route, with bearer auth and the error schema", () => {
    const { routes } = buildRestRoutes(apiServices);
    expect(routes.length).toBeGreaterThan(0);
    let operations = 0;
    for (const path of Object.values(doc.paths) as Record<string, unknown>[]) operations += Object.keys(path).length;
    // Besides the REST routes: the WebSocket watch and webhook deliveries (transport-paths.ts), and the artifact routes (artifact-paths.ts; the download answers HEAD too).
    expect(operations).toBe(routes.length + 2 + artifactHttpMethods.size + 1);
    for (const route of routes) {
      const op = doc.paths[openApiPath(route)]?.[route.httpMethod.toLowerCase()];
      expect(op, `${route.httpMethod} ${route.template.source}`).toBeDefined();
      expect(op.responses.default.content["application/json"].schema.$ref).toBe("#/components/schemas/Error");
      for (const variable of route.template.variables) {
        expect(op.parameters.some((p: Doc) => p.in === "path" && p.name === variable.join("."))).toBe(true);
      }
    }
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.components.schemas.Error.required).toEqual(["code", "message"]);
    expect(Object.keys(doc.components.schemas.Error.properties)).toEqual(["code", "message", "details"]);
  });

  it("documents the streaming and webhook routes with their media types", () => {
    const sse = doc.paths["/v1/operations/{id}:watch"].get;
    expect(Object.keys(sse.responses["200"].content)).toEqual(["text/event-stream"]);
    expect(sse.responses["204"]).toBeDefined();
    expect(sse.parameters.map((p: Doc) => p.name)).toEqual(expect.arrayContaining(["Last-Event-ID", "access_token"]));
    const ws = doc.paths["/ws/operations/{id}"].get;
    expect(ws.responses["101"].description).toMatch(/Switching Protocols/);
    expect(ws.parameters.map((p: Doc) => p.name)).toEqual(expect.arrayContaining(["id", "after_sequence", "access_token", "api_key", "Upgrade"]));
    const hook = doc.paths["/hooks/{id}"].post;
    // Signed, not bearer-authenticated.
    expect(hook.security).toEqual([]);
    expect(hook.parameters.filter((p: Doc) => p.in === "header").map((p: Doc) => p.name)).toEqual(["webhook-id", "webhook-timestamp", "webhook-signature"]);
    expect(Object.keys(hook.responses)).toEqual(expect.arrayContaining(["200", "202", "401", "404", "413", "429"]));
    expect(hook.responses["202"].content["application/json"].schema.oneOf[0].$ref).toBe("#/components/schemas/anvil.workflows.v1.RunWorkflowResponse");
  });

  it("describes the artifact routes with their media types", () => {
    const put = doc.paths["/v1/tasks/{task_id}/artifacts/{name}"].put;
    expect(Object.keys(put.requestBody.content)).toEqual(["*/*"]);
    expect(put.parameters.map((p: Doc) => p.name)).toEqual(["task_id", "name", "Anvil-Lease-Token"]);
    expect(put.responses["201"].content["application/json"].schema.$ref).toBe("#/components/schemas/anvil.operations.v1.Artifact");
    const get = doc.paths["/v1/operations/{operation_id}/artifacts/{name}"].get;
    expect(Object.keys(get.responses).sort()).toEqual(["200", "206", "304", "416", "default"]);
    expect(Object.keys(get.responses["200"].content)).toEqual(["*/*"]);
    expect(get.parameters.map((p: Doc) => p.name)).toEqual(["operation_id", "name", "Range", "If-Range", "If-None-Match"]);
    // HEAD: the same parameters and statuses, no content.
    const head = doc.paths["/v1/operations/{operation_id}/artifacts/{name}"].head;
    expect(head.operationId).toBe("OperationService_DownloadArtifact_Head");
    expect(head.parameters).toEqual(get.parameters);
    expect(Object.keys(head.responses).sort()).toEqual(["200", "206", "304", "416", "default"]);
    expect(Object.values(head.responses).some((r) => (r as Doc).content !== undefined)).toBe(false);
    expect(head.responses["200"].headers.ETag).toBeDefined();
  });

  it("maps messages per proto3 JSON, with descriptions from the proto comments", () => {
    const user = doc.components.schemas["anvil.users.v1.User"];
    expect(user.description).toBe("A user of a tenant.");
    expect(user.properties.email.description).toMatch(/E-mail address/);
    expect(user.properties.createTime).toMatchObject({ type: "string", format: "date-time", readOnly: true });
    expect(user.properties.roles.type).toBe("array");
    expect(user.properties.displayName).toBeDefined(); // JSON names, not proto names
    expect(doc.components.schemas["anvil.users.v1.User.State"].enum).toEqual(["STATE_UNSPECIFIED", "STATE_ACTIVE", "STATE_DISABLED"]);
    const update = doc.paths["/v1/users/{user.id}"].patch;
    expect(update.parameters.find((p: Doc) => p.name === "update_mask")).toMatchObject({ in: "query", schema: { type: "string" } });
    expect(update.requestBody.content["application/json"].schema.$ref).toBe("#/components/schemas/anvil.users.v1.User");
    expect(doc.paths["/v1/users/{id}"].get.summary).toBe("Returns one user.");
    expect(doc.paths["/v1/users"].get.parameters.map((p: Doc) => p.name)).toEqual(["page_size", "page_token"]);
  });

  it("states the limits the buf.validate rules set", () => {
    const user = doc.components.schemas["anvil.users.v1.User"];
    expect(user.properties.id).toMatchObject({ type: "string", format: "uuid" });
    expect(user.properties.email).toMatchObject({ type: "string", format: "email", maxLength: 254 });
    expect(user.properties.displayName).toMatchObject({ maxLength: 200 });
    expect(user.properties.roles).toMatchObject({
      type: "array",
      maxItems: 32,
      uniqueItems: true,
      items: { type: "string", maxLength: 64, pattern: "^[a-z][a-z0-9_-]*$" },
    });
    const list = doc.paths["/v1/users"].get.parameters;
    expect(list.find((p: Doc) => p.name === "page_size").schema).toMatchObject({ type: "integer", minimum: 0 });
    expect(list.find((p: Doc) => p.name === "page_token").schema).toMatchObject({ maxLength: 1024 });
    expect(doc.paths["/v1/users/{id}"].get.parameters[0].schema).toMatchObject({ format: "uuid" });
  });

  it("is up to date with the served protos (run `npm run generate:openapi` when this fails)", () => {
    // Generated code has no comments, so compare everything but the prose.
    const fresh = buildOpenApiDocument(apiServices, { title: doc.info.title, version: doc.info.version });
    expect(withoutProse(doc)).toEqual(withoutProse(fresh));
  });
});
