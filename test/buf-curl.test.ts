import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CommandResult, ensureProtoDeps, runBuf } from "./support/buf-cli.js";
import { databaseKinds } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";

type BufProtocol = "grpc" | "connect" | "grpcweb";

interface UserJson {
  id: string;
  email: string;
  displayName?: string;
  state?: string;
  etag: string;
}

// `buf curl` is Buf's own Go client (connect-go + net/http), sharing no code
// with Anvil; it reads the schema straight from the .proto files. It runs with
// the repository root as working directory and `--schema proto`: buf then
// finds buf.yaml there, sees `proto` is one module of that workspace, and
// resolves users.proto's google/api and google/rpc imports from the other
// module, .proto-deps/. (`--schema .` would also work but compiles the whole
// workspace; a copy of proto/ outside the workspace fails with "imported file
// does not exist".)
describe.each(databaseKinds)("UserService over buf curl --schema proto on %s", (kind) => {
  let server: TestServer;
  const tokens: Record<string, string> = {};
  const email = () => `bufcurl-${randomUUID().slice(0, 8)}@example.com`;

  beforeAll(async () => {
    await ensureProtoDeps();
    server = await startServer(kind);
    for (const key of ["acme-admin", "acme-viewer"]) tokens[key] = await server.token(key);
  });
  afterAll(() => server?.close());

  interface CurlOptions {
    protocol?: BufProtocol;
    /** A key id, a literal Authorization value ("Bearer …"), or null for none. */
    auth?: string | null;
    headers?: string[];
    verbose?: boolean;
  }

  /** Runs `buf curl` for UserService/<method> with `body` as JSON. */
  function curl(method: string, body: unknown, options: CurlOptions = {}): Promise<CommandResult> {
    const { protocol = "grpc", auth = "acme-admin", headers = [], verbose = false } = options;
    const args = ["curl", "--schema", "proto", "--protocol", protocol];
    // gRPC needs HTTP/2; over cleartext buf curl only speaks it with prior
    // knowledge. Connect and gRPC-Web go over HTTP/1.1, as from a browser.
    if (protocol === "grpc") args.push("--http2-prior-knowledge");
    if (auth !== null) args.push("-H", `Authorization: ${auth.includes(" ") ? auth : `Bearer ${tokens[auth]}`}`);
    for (const h of headers) args.push("-H", h);
    if (verbose) args.push("-v");
    args.push("-d", JSON.stringify(body), `${server.baseUrl}/anvil.users.v1.UserService/${method}`);
    return runBuf(args);
  }

  /** The response message of a successful call. */
  function ok<T = Record<string, unknown>>(result: CommandResult): T {
    expect(result.code, result.stderr || result.stdout).toBe(0);
    return JSON.parse(result.stdout) as T;
  }

  /** Asserts buf curl failed with exactly this Connect/gRPC code; returns the error it printed. */
  function failsWith(result: CommandResult, code: string): { code: string; message: string } {
    expect(result.code, result.stdout).not.toBe(0);
    const output = result.stdout + result.stderr;
    expect(output).toContain(`"code": "${code}"`);
    // The error is printed as one pretty JSON object on its own lines.
    const json = /^\{$[\s\S]*^\}$/m.exec(output)?.[0];
    expect(json, output).toBeDefined();
    return JSON.parse(json!) as { code: string; message: string };
  }

  async function createUser(protocol: BufProtocol = "grpc", address = email()): Promise<UserJson> {
    return ok<{ user: UserJson }>(await curl("CreateUser", { user: { email: address, displayName: "B", roles: ["viewer"] } }, { protocol })).user;
  }

  async function getUser(id: string): Promise<UserJson> {
    return ok<{ user: UserJson }>(await curl("GetUser", { id })).user;
  }

  it("creates and gets a user over gRPC, echoing x-request-id", async () => {
    const address = email();
    const created = await curl(
      "CreateUser",
      { user: { email: address, displayName: "Barbara", roles: ["viewer"] } },
      { headers: ["X-Request-Id: bufcurl-create-1"], verbose: true },
    );
    const user = ok<{ user: UserJson }>(created).user;
    // -v prints request (">") and response ("<") headers on stderr; this is the response's.
    expect(created.stderr).toMatch(/^buf: < \(#1\) x-request-id: bufcurl-create-1$/im);
    expect(user.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(user).toMatchObject({ email: address, displayName: "Barbara", state: "STATE_ACTIVE" });
    expect(user.etag).not.toBe("");
    expect(await getUser(user.id)).toEqual(user);
  });

  it("lists every user exactly once with pageSize 2, ending without a token", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) ids.add((await createUser()).id);
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = ok<{ users?: UserJson[]; nextPageToken?: string }>(await curl("ListUsers", { pageSize: 2, pageToken: token }));
      expect((page.users ?? []).length).toBeLessThanOrEqual(2);
      seen.push(...(page.users ?? []).map((u) => u.id));
      token = page.nextPageToken ?? "";
      pages++;
    } while (token !== "" && pages < 100);
    expect(token).toBe("");
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of ids) expect(seen).toContain(id);
  });

  it("updates only the masked fields with a matching etag; a stale etag is aborted and writes nothing", async () => {
    const created = await createUser();
    const updated = ok<{ user: UserJson }>(
      await curl("UpdateUser", {
        user: { id: created.id, displayName: "Renamed", email: email(), state: "STATE_DISABLED", etag: created.etag },
        updateMask: "displayName,state",
      }),
    ).user;
    expect(updated).toMatchObject({ id: created.id, email: created.email, displayName: "Renamed", state: "STATE_DISABLED" });
    expect(updated.etag).not.toBe(created.etag);
    failsWith(await curl("UpdateUser", { user: { id: created.id, displayName: "Stale", etag: created.etag }, updateMask: "displayName" }), "aborted");
    expect(await getUser(created.id)).toEqual(updated);
  });

  it("deletes conditionally on the etag, then reports not_found", async () => {
    const created = await createUser();
    const changed = ok<{ user: UserJson }>(await curl("UpdateUser", { user: { id: created.id, displayName: "Changed" }, updateMask: "displayName" })).user;
    failsWith(await curl("DeleteUser", { id: created.id, etag: created.etag }), "aborted");
    expect(await getUser(created.id)).toEqual(changed);
    expect(ok(await curl("DeleteUser", { id: created.id, etag: changed.etag }))).toEqual({});
    failsWith(await curl("GetUser", { id: created.id }), "not_found");
    failsWith(await curl("DeleteUser", { id: created.id }), "not_found");
  });

  it("reports invalid_argument, already_exists, permission_denied and unauthenticated with their codes", async () => {
    const existing = await createUser();
    const count = async () => (ok<{ users?: UserJson[] }>(await curl("ListUsers", { pageSize: 1000 })).users ?? []).length;
    const before = await count();

    const badEmail = failsWith(await curl("CreateUser", { user: { email: "not-an-email" } }), "invalid_argument");
    // The message is readable text, not percent-encoded.
    expect(badEmail.message).toContain("user.email");
    const badMask = failsWith(
      await curl("UpdateUser", { user: { id: existing.id, displayName: "x" }, updateMask: "displayName,noSuchField" }),
      "invalid_argument",
    );
    expect(badMask.message).toContain("no_such_field");
    failsWith(await curl("CreateUser", { user: { email: existing.email } }), "already_exists");
    failsWith(await curl("GetUser", { id: existing.id }, { auth: "acme-viewer" }), "permission_denied");
    failsWith(await curl("CreateUser", { user: { email: email() } }, { auth: "acme-viewer" }), "permission_denied");
    failsWith(await curl("GetUser", { id: existing.id }, { auth: null }), "unauthenticated");
    failsWith(await curl("GetUser", { id: existing.id }, { auth: "Bearer garbage" }), "unauthenticated");
    failsWith(await curl("GetUser", { id: randomUUID() }), "not_found");

    expect(await count()).toBe(before);
    expect(await getUser(existing.id)).toEqual(existing);
  });

  it("works with --protocol connect over HTTP/1.1", async () => {
    const created = await createUser("connect");
    const got = ok<{ user: UserJson }>(await curl("GetUser", { id: created.id }, { protocol: "connect" })).user;
    expect(got).toEqual(created);
    const page = ok<{ users?: UserJson[]; nextPageToken?: string }>(await curl("ListUsers", { pageSize: 1 }, { protocol: "connect" }));
    expect(page.users).toHaveLength(1);
    expect(page.nextPageToken).toBeTruthy();
    failsWith(await curl("GetUser", { id: randomUUID() }, { protocol: "connect" }), "not_found");
    failsWith(await curl("CreateUser", { user: { email: created.email } }, { protocol: "connect" }), "already_exists");
    failsWith(await curl("GetUser", { id: created.id }, { protocol: "connect", auth: null }), "unauthenticated");
  });

  it("works with --protocol grpcweb over HTTP/1.1", async () => {
    const created = await createUser("grpcweb");
    const got = ok<{ user: UserJson }>(await curl("GetUser", { id: created.id }, { protocol: "grpcweb" })).user;
    expect(got).toEqual(created);
    failsWith(await curl("DeleteUser", { id: created.id, etag: '"v999"' }, { protocol: "grpcweb" }), "aborted");
    failsWith(await curl("GetUser", { id: created.id }, { protocol: "grpcweb", auth: "acme-viewer" }), "permission_denied");
    const bad = failsWith(await curl("CreateUser", { user: { email: "nope" } }, { protocol: "grpcweb" }), "invalid_argument");
    expect(bad.message).toContain("user.email");
    expect(ok(await curl("DeleteUser", { id: created.id, etag: created.etag }, { protocol: "grpcweb" }))).toEqual({});
    failsWith(await curl("GetUser", { id: created.id }, { protocol: "grpcweb" }), "not_found");
  });
});
