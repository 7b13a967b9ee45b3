import { fromBinary } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { databaseKinds } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";

/** A user as the Connect JSON mapping spells it (lowerCamelCase, enum names, RFC 3339 times). */
interface UserJson {
  id: string;
  email: string;
  displayName?: string;
  roles?: string[];
  state?: string;
  etag: string;
  createTime?: string;
  updateTime?: string;
}

/** A Connect unary error body. */
interface ErrorJson {
  code: string;
  message: string;
  details?: { type: string; value: string }[];
}

interface Reply {
  status: number;
  headers: Headers;
  body: any;
}

// What a shell or Python script does: POST a JSON body with a bearer token to
// /<package.Service>/<Method>, no Connect client library, no protocol headers
// beyond Content-Type. Everything here is the wire format itself.
describe.each(databaseKinds)("UserService over plain fetch + JSON on %s", (kind) => {
  let server: TestServer;
  const tokens: Record<string, string> = {};
  const email = () => `fetch-${randomUUID().slice(0, 8)}@example.com`;

  beforeAll(async () => {
    server = await startServer(kind);
    for (const key of ["acme-admin", "acme-viewer"]) tokens[key] = await server.token(key);
  });
  afterAll(() => server?.close());

  /** POSTs `body` as JSON to UserService/<method>; `auth` null sends no Authorization header. */
  async function post(method: string, body: unknown, auth: string | null = "acme-admin", extra: Record<string, string> = {}): Promise<Reply> {
    const headers: Record<string, string> = { "Content-Type": "application/json", ...extra };
    if (auth !== null) headers.Authorization = auth.startsWith("Bearer ") || auth.startsWith("Basic ") ? auth : `Bearer ${tokens[auth]}`;
    const res = await fetch(`${server.baseUrl}/anvil.users.v1.UserService/${method}`, { method: "POST", headers, body: JSON.stringify(body) });
    return { status: res.status, headers: res.headers, body: await res.json() };
  }

  /** GETs UserService/<method> the Connect way, for NO_SIDE_EFFECTS methods. */
  async function connectGet(method: string, message: unknown, auth = "acme-admin"): Promise<Reply> {
    const query = new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify(message) });
    const res = await fetch(`${server.baseUrl}/anvil.users.v1.UserService/${method}?${query}`, {
      headers: { Authorization: `Bearer ${tokens[auth]}` },
    });
    return { status: res.status, headers: res.headers, body: await res.json() };
  }

  /** Asserts an error reply: exact HTTP status, Connect code, a message, and a JSON-only content type. */
  function expectError(reply: Reply, httpStatus: number, code: string): ErrorJson {
    expect({ status: reply.status, code: reply.body.code }).toEqual({ status: httpStatus, code });
    expect(reply.headers.get("content-type")).toMatch(/^application\/json/);
    const err = reply.body as ErrorJson;
    expect(typeof err.message).toBe("string");
    expect(err.message.length).toBeGreaterThan(0);
    return err;
  }

  async function createUser(address = email()): Promise<UserJson> {
    const reply = await post("CreateUser", { user: { email: address, displayName: "F", roles: ["viewer"] } });
    expect(reply.status).toBe(200);
    return reply.body.user as UserJson;
  }

  async function getUser(id: string): Promise<UserJson> {
    const reply = await post("GetUser", { id });
    expect(reply.status).toBe(200);
    return reply.body.user as UserJson;
  }

  async function countUsers(): Promise<number> {
    const reply = await post("ListUsers", { pageSize: 1000 });
    expect(reply.status).toBe(200);
    expect(reply.body.nextPageToken ?? "").toBe("");
    return (reply.body.users ?? []).length;
  }

  it("creates and gets a user as JSON, echoing x-request-id", async () => {
    const address = email();
    const created = await post(
      "CreateUser",
      { user: { email: address, displayName: "Ada", roles: ["viewer", "editor"] } },
      "acme-admin",
      { "X-Request-Id": "fetch-create-1" },
    );
    expect(created.status).toBe(200);
    expect(created.headers.get("content-type")).toMatch(/^application\/json/);
    expect(created.headers.get("x-request-id")).toBe("fetch-create-1");
    const user = created.body.user as UserJson;
    expect(user.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(user).toMatchObject({ email: address, displayName: "Ada", roles: ["viewer", "editor"], state: "STATE_ACTIVE" });
    expect(user.etag).not.toBe("");
    expect(new Date(user.createTime!).getTime()).not.toBeNaN();
    expect(await getUser(user.id)).toEqual(user);
  });

  it("lists every user exactly once with pageSize 2, ending without a token", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) ids.add((await createUser()).id);
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const reply = await post("ListUsers", { pageSize: 2, pageToken: token });
      expect(reply.status).toBe(200);
      const users = (reply.body.users ?? []) as UserJson[];
      expect(users.length).toBeLessThanOrEqual(2);
      seen.push(...users.map((u) => u.id));
      // proto3 JSON omits an empty string: the last page has no nextPageToken at all.
      token = reply.body.nextPageToken ?? "";
      pages++;
    } while (token !== "" && pages < 100);
    expect(token).toBe("");
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of ids) expect(seen).toContain(id);
  });

  it("serves GetUser and ListUsers over Connect GET (NO_SIDE_EFFECTS)", async () => {
    const created = await createUser();
    const got = await connectGet("GetUser", { id: created.id });
    expect(got.status).toBe(200);
    expect(got.body.user).toEqual(created);

    const pages: string[] = [];
    let token = "";
    do {
      const reply = await connectGet("ListUsers", { pageSize: 2, pageToken: token });
      expect(reply.status).toBe(200);
      pages.push(...((reply.body.users ?? []) as UserJson[]).map((u) => u.id));
      token = reply.body.nextPageToken ?? "";
    } while (token !== "" && pages.length < 10_000);
    expect(pages).toContain(created.id);
    expect(new Set(pages).size).toBe(pages.length);

    expectError(await connectGet("GetUser", { id: randomUUID() }), 404, "not_found");
    expectError(await connectGet("GetUser", { id: created.id }, "acme-viewer"), 403, "permission_denied");
    // A write is not NO_SIDE_EFFECTS, so it cannot be sent as a GET.
    const write = await fetch(
      `${server.baseUrl}/anvil.users.v1.UserService/DeleteUser?${new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify({ id: created.id }) })}`,
      { headers: { Authorization: `Bearer ${tokens["acme-admin"]}` } },
    );
    expect(write.status).toBe(405);
    expect(await getUser(created.id)).toEqual(created);
  });

  it("updates only the masked fields with a matching etag; a stale etag is 409 aborted and writes nothing", async () => {
    const created = await createUser();
    const reply = await post("UpdateUser", {
      // FieldMask in JSON is one comma-separated string of lowerCamelCase paths; email is not in it.
      user: { id: created.id, displayName: "Renamed", email: email(), state: "STATE_DISABLED", etag: created.etag },
      updateMask: "displayName,state",
    });
    expect(reply.status).toBe(200);
    const updated = reply.body.user as UserJson;
    expect(updated).toMatchObject({ id: created.id, email: created.email, displayName: "Renamed", state: "STATE_DISABLED" });
    expect(updated.etag).not.toBe(created.etag);

    const stale = await post("UpdateUser", { user: { id: created.id, displayName: "Stale", etag: created.etag }, updateMask: "displayName" });
    expectError(stale, 409, "aborted");
    expect(await getUser(created.id)).toEqual(updated);
  });

  it("deletes conditionally on the etag, then answers 404 not_found", async () => {
    const created = await createUser();
    const changed = await post("UpdateUser", { user: { id: created.id, displayName: "Changed" }, updateMask: "displayName" });
    expect(changed.status).toBe(200);
    expectError(await post("DeleteUser", { id: created.id, etag: created.etag }), 409, "aborted");
    expect(await getUser(created.id)).toEqual(changed.body.user);
    const deleted = await post("DeleteUser", { id: created.id, etag: changed.body.user.etag });
    expect(deleted).toMatchObject({ status: 200, body: {} });
    expectError(await post("GetUser", { id: created.id }), 404, "not_found");
    expectError(await post("DeleteUser", { id: created.id }), 404, "not_found");
  });

  it("answers 400 invalid_argument for a bad email, naming user.email in a BadRequest detail, and creates nothing", async () => {
    const before = await countUsers();
    const err = expectError(await post("CreateUser", { user: { email: "not-an-email" } }), 400, "invalid_argument");
    expect(err.message).toContain("user.email");
    const detail = err.details?.find((d) => d.type === "google.rpc.BadRequest");
    expect(detail).toBeDefined();
    const badRequest = fromBinary(BadRequestSchema, Buffer.from(detail!.value, "base64"));
    expect(badRequest.fieldViolations.map((v) => v.field)).toContain("user.email");
    expect(await countUsers()).toBe(before);
  });

  it("answers 400 invalid_argument for an unknown mask path or malformed JSON and changes nothing", async () => {
    const created = await createUser();
    const unknown = expectError(
      await post("UpdateUser", { user: { id: created.id, displayName: "Nope" }, updateMask: "displayName,noSuchField" }),
      400,
      "invalid_argument",
    );
    expect(unknown.message).toContain("no_such_field");
    const res = await fetch(`${server.baseUrl}/anvil.users.v1.UserService/CreateUser`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${tokens["acme-admin"]}` },
      body: '{"user": {"email": ',
    });
    expectError({ status: res.status, headers: res.headers, body: await res.json() }, 400, "invalid_argument");
    expect(await getUser(created.id)).toEqual(created);
  });

  it("answers 409 already_exists for a duplicate email and creates nothing", async () => {
    const first = await createUser();
    const before = await countUsers();
    expectError(await post("CreateUser", { user: { email: first.email } }), 409, "already_exists");
    expect(await countUsers()).toBe(before);
  });

  it("answers 403 permission_denied for a viewer and 401 unauthenticated without a valid token", async () => {
    const created = await createUser();
    expectError(await post("GetUser", { id: created.id }, "acme-viewer"), 403, "permission_denied");
    expectError(await post("CreateUser", { user: { email: email() } }, "acme-viewer"), 403, "permission_denied");
    const anonymous = await post("GetUser", { id: created.id }, null, { "X-Request-Id": "fetch-anon" });
    expectError(anonymous, 401, "unauthenticated");
    expect(anonymous.headers.get("x-request-id")).toBe("fetch-anon");
    expectError(await post("GetUser", { id: created.id }, "Bearer garbage"), 401, "unauthenticated");
    expectError(await post("GetUser", { id: created.id }, "Basic Zm9vOmJhcg=="), 401, "unauthenticated");
    expectError(await post("DeleteUser", { id: created.id }, `Bearer ${tokens["acme-admin"]}x`), 401, "unauthenticated");
    expect(await getUser(created.id)).toEqual(created);
  });
});
