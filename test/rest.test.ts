import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { matchPathTemplate, parsePathTemplate, type PathTemplate, type TemplateSegment, templateSpecificity } from "../src/server/rest/path-template.js";
import { artifactHttpMethods } from "../src/server/artifacts/artifact-routes.js";
import { buildRestRoutes, type RestRoute } from "../src/server/rest/rest-routes.js";
import { RouteIndex } from "../src/server/rest/route-index.js";
import { transcodeRequest } from "../src/server/rest/transcode.js";
import { apiServices } from "../src/server/services.js";
import { databaseKinds } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";

interface Reply {
  status: number;
  headers: Headers;
  // biome-ignore lint: replies are checked field by field
  json: any;
}

async function call(server: TestServer, method: string, path: string, options: { token?: string; body?: unknown; raw?: string | Uint8Array; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | Uint8Array | undefined = options.raw;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  const res = await fetch(`${server.baseUrl}${path}`, { method, headers, body: body as BodyInit | undefined });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text === "" ? undefined : JSON.parse(text) };
}

/** A concrete path for a template: every variable and wildcard becomes a valid UUID. */
function concretePath(template: PathTemplate): string {
  const uuid = "0b7a4c1e-9f5d-4f7e-8a3b-2c1d0e9f8a7b";
  const text = (segments: readonly TemplateSegment[]): string =>
    segments.map((s) => (s.kind === "literal" ? s.value : s.kind === "variable" ? text(s.segments) : uuid)).join("/");
  return `/${text(template.segments)}${template.verb ? `:${template.verb}` : ""}`;
}

function expectError(reply: Reply, status: number, code: string): void {
  expect(reply.status, JSON.stringify(reply.json)).toBe(status);
  expect(reply.headers.get("content-type")).toMatch(/^application\/json/);
  expect(reply.json.code).toBe(code);
  expect(typeof reply.json.message).toBe("string");
  expect(Array.isArray(reply.json.details)).toBe(true);
}

describe("REST routes from google.api.http", () => {
  it("every RPC of every served service has an HTTP annotation", () => {
    const { unannotated, routes } = buildRestRoutes(apiServices);
    // Except the artifact streams, served by plain PUT and GET routes of their own (raw bytes, not JSON).
    expect(unannotated.filter((m) => !artifactHttpMethods.has(m)).map((m) => `${m.parent.typeName}.${m.name}`)).toEqual([]);
    const methods = apiServices.flatMap((s) => s.methods).filter((m) => !artifactHttpMethods.has(m));
    expect(new Set(routes.map((r) => r.method)).size).toBe(methods.length);
  });

  it("parses and matches templates: nested fields, multi-segment variables, custom verbs", () => {
    const nested = parsePathTemplate("/v1/users/{user.id}");
    expect(matchPathTemplate(nested, "/v1/users/a%20b")?.get("user.id")).toBe("a b");
    expect(matchPathTemplate(nested, "/v1/users/a/b")).toBeUndefined();
    const named = parsePathTemplate("/v1/{name=projects/*/things/*}:run");
    expect(matchPathTemplate(named, "/v1/projects/p1/things/t2:run")?.get("name")).toBe("projects/p1/things/t2");
    expect(matchPathTemplate(named, "/v1/projects/p1/things/t2")).toBeUndefined();
    const rest = parsePathTemplate("/v1/files/{path=**}");
    expect(matchPathTemplate(rest, "/v1/files/a/b/c")?.get("path")).toBe("a/b/c");
    expect(() => parsePathTemplate("v1/x")).toThrow();
    expect(() => parsePathTemplate("/v1/{a=**}/x")).toThrow();
  });

  it("finds through its index exactly the routes a match against every template finds, in the same order", () => {
    const extra: RestRoute[] = ["/v1/{name=projects/*/things/*}:run", "/v1/files/{path=**}", "/{id}/x", "/v1:ping"].map((source) => ({
      httpMethod: "POST",
      template: parsePathTemplate(source),
      method: UserService.method.getUser,
      pathFields: [],
      body: { kind: "none" },
      responseBody: undefined,
    }));
    const routes = [...buildRestRoutes(apiServices).routes, ...extra];
    const index = new RouteIndex(routes);
    const bySpecificity = [...routes].sort((a, b) => templateSpecificity(b.template) - templateSpecificity(a.template));
    const paths = [
      ...routes.map((r) => concretePath(r.template)),
      "/v1/ipas/x:deploy",
      "/v1/ipas/x%3Adeploy",
      "/v1/ipas/x:nope",
      "/v1/ipa%73/x",
      "/v1/users/%ZZ",
      "/v1/users/",
      "/v1/users//x",
      "/v1/users:batch",
      "/v1:ping",
      "/v1",
      "/",
      "",
      "/v1/projects/p/things/t:run",
      "/v1/files/a/b/c",
      "/anything/x",
      "/healthz",
    ];
    let matched = 0;
    for (const path of paths) {
      const expected = bySpecificity.flatMap((route) => {
        const bindings = matchPathTemplate(route.template, path);
        return bindings ? [{ route, bindings }] : [];
      });
      expect(index.match(path), path).toEqual(expected);
      matched += expected.length;
    }
    expect(matched).toBeGreaterThan(routes.length);
  });

  it("maps query parameters: nested, repeated, enums by name or number, FieldMask, Timestamp", () => {
    // UpdateUser bound without a body, so every field comes from the URL.
    const route: RestRoute = {
      httpMethod: "PATCH",
      template: parsePathTemplate("/v1/users/{user.id}"),
      method: UserService.method.updateUser,
      pathFields: [[UserService.method.updateUser.input.field.user!, UserService.method.updateUser.input.field.user!.message!.field.id!]],
      body: { kind: "none" },
      responseBody: undefined,
    };
    const bindings = matchPathTemplate(route.template, "/v1/users/u1")!;
    const query = new URLSearchParams(
      "user.roles=a&user.roles=b&user.state=STATE_DISABLED&update_mask=display_name,state&user.display_name=x&user.create_time=2024-01-02T03:04:05Z",
    );
    expect(transcodeRequest(route, bindings, query, "")).toEqual({
      user: { id: "u1", roles: ["a", "b"], state: "STATE_DISABLED", displayName: "x", createTime: "2024-01-02T03:04:05Z" },
      updateMask: "displayName,state",
    });
    expect(transcodeRequest(route, bindings, new URLSearchParams("user.state=2"), "")).toEqual({ user: { id: "u1", state: 2 } });
    expect(() => transcodeRequest(route, bindings, new URLSearchParams("user.nope=1"), "")).toThrow(/unknown query parameter/);
    expect(() => transcodeRequest(route, bindings, new URLSearchParams("user.id=other"), "")).toThrow(/already given/);
    expect(() => transcodeRequest(route, bindings, new URLSearchParams("user.display_name=a&user.display_name=b"), "")).toThrow(/not repeated/);
    expect(() => transcodeRequest(route, bindings, new URLSearchParams("user.create_time=yesterday"), "")).toThrow();
  });
});

describe.each(databaseKinds)("REST over a real server on %s", (kind) => {
  let server: TestServer;
  let admin: string;
  let viewer: string;
  beforeAll(async () => {
    server = await startServer(kind);
    admin = await server.token("acme-admin");
    viewer = await server.token("acme-viewer");
  });
  afterAll(async () => {
    await server.close();
  });

  it("reaches every method of every service, through the RPC interceptors", async () => {
    const { routes } = buildRestRoutes(apiServices);
    for (const route of routes) {
      const path = concretePath(route.template);
      // Server streams (WatchOperation) have no single JSON reply: REST answers 501 for them by design.
      if (route.method.methodKind !== "unary") continue;
      const reply = await call(server, route.httpMethod, path, {
        token: admin,
        headers: { "x-request-id": "rest-probe-1" },
        ...(route.body.kind === "none" ? {} : { body: {} }),
      });
      const what = `${route.httpMethod} ${path} → ${reply.status} ${JSON.stringify(reply.json)}`;
      expect(reply.status, what).not.toBe(405);
      // The request-id interceptor echoed the id: the call ran the RPC's interceptor chain.
      expect(reply.headers.get("x-request-id"), what).toBe("rest-probe-1");
      expect(reply.json, what).toBeTypeOf("object");
      if (reply.status !== 200) expect(reply.json.code, what).not.toBe("unimplemented");
    }
  });

  it("runs the UserService flow: create, get, list pages, masked update with etag, conditional delete", async () => {
    const created = [];
    for (const n of [1, 2, 3]) {
      const reply = await call(server, "POST", "/v1/users", {
        token: admin,
        body: { email: `rest-${n}-${kind}@example.com`, displayName: `Rest ${n}`, roles: ["viewer"] },
      });
      expect(reply.status, JSON.stringify(reply.json)).toBe(200);
      // response_body: "user" — the user itself, not {user: …}.
      expect(reply.json.email).toBe(`rest-${n}-${kind}@example.com`);
      expect(reply.json.createTime).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(reply.json.state).toBe("STATE_ACTIVE");
      created.push(reply.json);
    }
    const first = created[0];

    const got = await call(server, "GET", `/v1/users/${first.id}`, { token: admin });
    expect(got.status).toBe(200);
    expect(got.json).toEqual(first);
    expect(got.headers.get("cache-control")).toBe("private, no-cache");
    expect(got.headers.get("vary")).toMatch(/Authorization/);

    const page1 = await call(server, "GET", "/v1/users?page_size=2", { token: admin });
    expect(page1.status).toBe(200);
    expect(page1.json.users).toHaveLength(2);
    expect(page1.json.nextPageToken).toBeTruthy();
    const page2 = await call(server, "GET", `/v1/users?page_size=2&page_token=${encodeURIComponent(page1.json.nextPageToken)}`, { token: admin });
    expect(page2.status).toBe(200);
    expect(page2.json.users).toHaveLength(1);
    expect(page2.json.nextPageToken ?? "").toBe("");
    expect([...page1.json.users, ...page2.json.users].map((u: { id: string }) => u.id)).toEqual(created.map((u) => u.id));

    const updated = await call(server, "PATCH", `/v1/users/${first.id}?update_mask=display_name`, {
      token: admin,
      body: { displayName: "Renamed", email: "ignored@example.com", etag: first.etag },
    });
    expect(updated.status, JSON.stringify(updated.json)).toBe(200);
    expect(updated.json.displayName).toBe("Renamed");
    expect(updated.json.email).toBe(first.email); // not in the mask
    expect(updated.json.etag).not.toBe(first.etag);

    const stale = await call(server, "PATCH", `/v1/users/${first.id}?update_mask=display_name`, {
      token: admin,
      body: { displayName: "Again", etag: first.etag },
    });
    expectError(stale, 409, "aborted");

    const enumByNumber = await call(server, "PATCH", `/v1/users/${first.id}?update_mask=state`, { token: admin, body: { state: 2 } });
    expect(enumByNumber.json.state).toBe("STATE_DISABLED");

    expectError(await call(server, "DELETE", `/v1/users/${first.id}?etag=${encodeURIComponent(first.etag)}`, { token: admin }), 409, "aborted");
    const current = (await call(server, "GET", `/v1/users/${first.id}`, { token: admin })).json;
    const deleted = await call(server, "DELETE", `/v1/users/${first.id}?etag=${encodeURIComponent(current.etag)}`, { token: admin });
    expect(deleted.status).toBe(200);
    expect(deleted.json).toEqual({});
    expectError(await call(server, "GET", `/v1/users/${first.id}`, { token: admin }), 404, "not_found");
  });

  it("is subject to authentication and permissions exactly like RPC", async () => {
    expectError(await call(server, "GET", "/v1/users"), 401, "unauthenticated");
    expectError(await call(server, "GET", "/v1/users", { token: "not-a-jwt" }), 401, "unauthenticated");
    expectError(await call(server, "POST", "/v1/users", { token: viewer, body: { email: "v@example.com" } }), 403, "permission_denied");
    expectError(await call(server, "GET", "/v1/users", { token: viewer }), 403, "permission_denied");
  });

  it("refuses bad input with INVALID_ARGUMENT and details", async () => {
    const unknownField = await call(server, "POST", "/v1/users", { token: admin, body: { email: "x@example.com", nickname: "x" } });
    expectError(unknownField, 400, "invalid_argument");
    expect(unknownField.json.message).toMatch(/nickname/);
    expectError(await call(server, "GET", "/v1/users?colour=blue", { token: admin }), 400, "invalid_argument");
    expectError(await call(server, "GET", "/v1/users?page_size=many", { token: admin }), 400, "invalid_argument");
    expectError(await call(server, "POST", "/v1/users", { token: admin, raw: "{not json", headers: { "content-type": "application/json" } }), 400, "invalid_argument");
    const invalid = await call(server, "POST", "/v1/users", { token: admin, body: { email: "not-an-email" } });
    expectError(invalid, 400, "invalid_argument");
    expect(invalid.json.details.length).toBeGreaterThan(0); // the validator's BadRequest naming the field
    expectError(await call(server, "POST", "/v1/users", { token: admin, raw: "email=x", headers: { "content-type": "text/plain" } }), 415, "unimplemented");
  });

  it("answers unknown paths with 404 and wrong methods with 405 and Allow", async () => {
    const missing = await call(server, "GET", "/v1/nothing-here", { token: admin });
    expect(missing.status).toBe(404);
    expect(missing.json.code).toBe("not_found");
    const wrong = await call(server, "PUT", "/v1/users", { token: admin, body: {} });
    expectError(wrong, 405, "unimplemented");
    expect(wrong.headers.get("allow")?.split(", ").sort()).toEqual(["GET", "POST"]);
  });
});

describe.each(databaseKinds)("REST body limit on %s", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: { ANVIL_MAX_REQUEST_BYTES: "2048" } });
  });
  afterAll(async () => {
    await server.close();
  });

  it("refuses bodies over ANVIL_MAX_REQUEST_BYTES, compressed or not, with 413", async () => {
    const token = await server.token();
    const big = { email: "big@example.com", displayName: "x".repeat(4000) };
    expectError(await call(server, "POST", "/v1/users", { token, body: big }), 413, "resource_exhausted");
    // Small on the wire, large once inflated: the limit applies after decompression too.
    const bomb = gzipSync(JSON.stringify({ email: "bomb@example.com", displayName: " ".repeat(100_000) }));
    expect(bomb.byteLength).toBeLessThan(2048);
    const reply = await call(server, "POST", "/v1/users", {
      token,
      raw: bomb,
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
    });
    expectError(reply, 413, "resource_exhausted");
  });
});
