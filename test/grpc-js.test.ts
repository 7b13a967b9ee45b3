import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type User, User_State } from "../gen/anvil/users/v1/users_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../gen/google/rpc/status_pb.js";
import { databaseKinds } from "./support/databases.js";
import { GrpcJsCallError, type GrpcJsUsers, grpcJsUsers } from "./support/grpc-js-client.js";
import { startServer, type TestServer } from "./support/server.js";

// @grpc/grpc-js is a gRPC implementation Anvil does not use itself: if Anvil's
// HTTP/2 sniffing, gRPC framing, status trailers or error details only worked
// with connect-es on both ends, these tests would catch it.
describe.each(databaseKinds)("UserService over @grpc/grpc-js on %s", (kind) => {
  let server: TestServer;
  let users: GrpcJsUsers;
  const tokens: Record<string, string> = {};
  const as = (key = "acme-admin", extra: Record<string, string> = {}) => ({ authorization: `Bearer ${tokens[key]}`, ...extra });
  const email = () => `grpcjs-${randomUUID().slice(0, 8)}@example.com`;

  beforeAll(async () => {
    server = await startServer(kind);
    for (const key of ["acme-admin", "acme-viewer"]) tokens[key] = await server.token(key);
    users = grpcJsUsers(server.port);
  });
  afterAll(async () => {
    users?.close();
    await server?.close();
  });

  /** The call's failure; fails the test if it succeeded. */
  async function failure(promise: Promise<unknown>, code: status): Promise<GrpcJsCallError> {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, `expected ${status[code]}`).toBeInstanceOf(GrpcJsCallError);
    expect(status[(err as GrpcJsCallError).code]).toBe(status[code]);
    return err as GrpcJsCallError;
  }

  async function createUser(address = email()): Promise<User> {
    const { response } = await users.call("createUser", { user: { email: address, displayName: "G", roles: ["viewer"] } }, as());
    return response.user!;
  }

  async function countUsers(): Promise<number> {
    const { response } = await users.call("listUsers", { pageSize: 1000 }, as());
    expect(response.nextPageToken).toBe("");
    return response.users.length;
  }

  it("creates and gets a user, echoing the x-request-id header", async () => {
    const requestId = `grpcjs-${randomUUID()}`;
    const address = email();
    const created = await users.call(
      "createUser",
      { user: { email: address, displayName: "Grace", roles: ["viewer", "editor"] } },
      as("acme-admin", { "x-request-id": requestId }),
    );
    expect(created.headers.get("x-request-id")).toEqual([requestId]);
    const user = created.response.user!;
    expect(user.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(user).toMatchObject({ email: address, displayName: "Grace", roles: ["viewer", "editor"], state: User_State.ACTIVE });
    expect(user.etag).not.toBe("");
    expect(user.createTime).toBeDefined();

    const got = await users.call("getUser", { id: user.id }, as());
    expect(got.response.user).toEqual(user);
  });

  it("lists every user exactly once with page_size 2, ending with an empty token", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) ids.add((await createUser()).id);
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const { response } = await users.call("listUsers", { pageSize: 2, pageToken: token }, as());
      expect(response.users.length).toBeLessThanOrEqual(2);
      seen.push(...response.users.map((u) => u.id));
      token = response.nextPageToken;
      pages++;
    } while (token !== "" && pages < 100);
    expect(token).toBe("");
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of ids) expect(seen).toContain(id);
  });

  it("updates only the masked fields with a matching etag; a stale etag is ABORTED and writes nothing", async () => {
    const created = await createUser();
    const { response } = await users.call(
      "updateUser",
      {
        // email is not in the mask, so its new value must be ignored.
        user: { id: created.id, displayName: "Renamed", email: email(), state: User_State.DISABLED, etag: created.etag },
        updateMask: { paths: ["display_name", "state"] },
      },
      as(),
    );
    const updated = response.user!;
    expect(updated).toMatchObject({ id: created.id, email: created.email, displayName: "Renamed", state: User_State.DISABLED });
    expect(updated.etag).not.toBe(created.etag);

    await failure(
      users.call(
        "updateUser",
        { user: { id: created.id, displayName: "Stale", etag: created.etag }, updateMask: { paths: ["display_name"] } },
        as(),
      ),
      status.ABORTED,
    );
    expect((await users.call("getUser", { id: created.id }, as())).response.user).toEqual(updated);
  });

  it("deletes conditionally on the etag, then reports NOT_FOUND", async () => {
    const created = await createUser();
    const { response } = await users.call(
      "updateUser",
      { user: { id: created.id, displayName: "Changed" }, updateMask: { paths: ["display_name"] } },
      as(),
    );
    await failure(users.call("deleteUser", { id: created.id, etag: created.etag }, as()), status.ABORTED);
    expect((await users.call("getUser", { id: created.id }, as())).response.user).toEqual(response.user);
    await users.call("deleteUser", { id: created.id, etag: response.user!.etag }, as());
    await failure(users.call("getUser", { id: created.id }, as()), status.NOT_FOUND);
    await failure(users.call("deleteUser", { id: created.id }, as()), status.NOT_FOUND);
  });

  it("is NOT_FOUND for an unknown id", async () => {
    await failure(users.call("getUser", { id: randomUUID() }, as()), status.NOT_FOUND);
    await failure(
      users.call("updateUser", { user: { id: randomUUID(), displayName: "x" }, updateMask: { paths: ["display_name"] } }, as()),
      status.NOT_FOUND,
    );
  });

  it("is INVALID_ARGUMENT for a bad email, naming user.email in a google.rpc.BadRequest, and creates nothing", async () => {
    const before = await countUsers();
    const err = await failure(users.call("createUser", { user: { email: "not-an-email" } }, as()), status.INVALID_ARGUMENT);
    expect(err.details).toContain("user.email");

    // grpc-js hands -bin trailers over already base64-decoded.
    const [bin] = err.trailers.get("grpc-status-details-bin");
    expect(bin).toBeInstanceOf(Buffer);
    const rpcStatus = fromBinary(StatusSchema, bin as Buffer);
    expect(rpcStatus.code).toBe(status.INVALID_ARGUMENT);
    expect(rpcStatus.message).toBe(err.details);
    const badRequests = rpcStatus.details.map((any) => anyUnpack(any, BadRequestSchema)).filter((m) => m !== undefined);
    expect(badRequests).toHaveLength(1);
    expect(badRequests[0]!.fieldViolations.map((v) => v.field)).toContain("user.email");

    expect(await countUsers()).toBe(before);
  });

  it("is INVALID_ARGUMENT for an unknown update_mask path and changes nothing", async () => {
    const created = await createUser();
    const err = await failure(
      users.call(
        "updateUser",
        { user: { id: created.id, displayName: "Nope" }, updateMask: { paths: ["display_name", "no_such_field"] } },
        as(),
      ),
      status.INVALID_ARGUMENT,
    );
    expect(err.details).toContain("no_such_field");
    expect((await users.call("getUser", { id: created.id }, as())).response.user).toEqual(created);
  });

  it("is ALREADY_EXISTS for a duplicate email and creates nothing", async () => {
    const first = await createUser();
    const before = await countUsers();
    await failure(createUser(first.email), status.ALREADY_EXISTS);
    // Uniqueness is case-insensitive.
    await failure(createUser(first.email.toUpperCase()), status.ALREADY_EXISTS);
    expect(await countUsers()).toBe(before);
  });

  it("is PERMISSION_DENIED for a viewer, on reads and writes of users", async () => {
    const created = await createUser();
    await failure(users.call("getUser", { id: created.id }, as("acme-viewer")), status.PERMISSION_DENIED);
    await failure(users.call("createUser", { user: { email: email() } }, as("acme-viewer")), status.PERMISSION_DENIED);
    await failure(users.call("deleteUser", { id: created.id }, as("acme-viewer")), status.PERMISSION_DENIED);
    expect((await users.call("getUser", { id: created.id }, as())).response.user).toEqual(created);
  });

  it("is UNAUTHENTICATED without a token or with a garbage one, still echoing x-request-id", async () => {
    const id = randomUUID();
    const missing = await failure(users.call("getUser", { id }, { "x-request-id": "grpcjs-anon" }), status.UNAUTHENTICATED);
    // A trailers-only error response carries its metadata in the trailers.
    expect([...missing.headers.get("x-request-id"), ...missing.trailers.get("x-request-id")]).toContain("grpcjs-anon");
    await failure(users.call("getUser", { id }, { authorization: "Bearer not.a.jwt" }), status.UNAUTHENTICATED);
    await failure(users.call("getUser", { id }, { authorization: "Basic Zm9vOmJhcg==" }), status.UNAUTHENTICATED);
    await failure(users.call("createUser", { user: { email: email() } }, { authorization: `Bearer ${tokens["acme-admin"]}x` }), status.UNAUTHENTICATED);
  });
});
