import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserService } from "../../gen/anvil/users/v1/users_pb.js";
import { repoRoot, runBuf } from "../support/buf-cli.js";
import { clientFor } from "../support/clients.js";
import { databaseKinds } from "../support/databases.js";
import { startServer, type TestServer } from "../support/server.js";

const run = promisify(execFile);

/**
 * The README works as written on a fresh clone: after `npm start`, its
 * `buf curl --schema proto` finds every import, and its REST examples —
 * `curl -d` with curl's default form content type — reach the gateway as
 * JSON instead of a 415.
 */
describe.each(databaseKinds)("the README's commands on %s", (kind) => {
  let server: TestServer;
  let token: string;
  let userId: string;
  beforeAll(async () => {
    server = await startServer(kind);
    token = await server.token();
    const users = clientFor(UserService, "connect-json", server.baseUrl, token);
    userId = (await users.createUser({ user: { email: `readme-${Date.now()}@example.com`, displayName: "Ada", roles: ["viewer"] } })).user!.id;
  });
  afterAll(() => server?.close());

  it("PATCH and POST with curl -d (curl's default Content-Type) succeed over REST", async () => {
    // The README's commands, with its host and placeholders filled in.
    const patch = await run("curl", ["-s", "-w", "\n%{http_code}", "-X", "PATCH", `${server.baseUrl}/v1/users/${userId}?update_mask=display_name`, "-H", `Authorization: Bearer ${token}`, "-d", '{"displayName": "Ada L."}']);
    const [body, status] = patch.stdout.split("\n");
    expect(status, body).toBe("200");
    expect(JSON.parse(body!).displayName).toBe("Ada L.");
    const post = await run("curl", ["-s", "-w", "\n%{http_code}", "-X", "POST", `${server.baseUrl}/v1/users`, "-H", `Authorization: Bearer ${token}`, "-d", `{"email": "curl-${Date.now()}@example.com", "roles": ["viewer"]}`]);
    expect(post.stdout.split("\n")[1], post.stdout).toBe("200");
  });

  it.each([
    [undefined, 200],
    ["application/json", 200],
    ["application/json; charset=utf-8", 200],
    ["application/merge-patch+json", 200],
    ["application/x-www-form-urlencoded", 200],
    ["text/plain", 415],
    ["multipart/form-data; boundary=x", 415],
    ["application/xml", 415],
  ] as const)("a REST body sent as %s answers %i", async (type, status) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    // The body goes as bytes, so that fetch adds no Content-Type of its own.
    if (type !== undefined) headers["content-type"] = type;
    const res = await fetch(`${server.baseUrl}/v1/users/${userId}?update_mask=display_name`, { method: "PATCH", headers, body: Buffer.from('{"displayName": "Ada"}') });
    expect(res.status, await res.text()).toBe(status);
  });
});

describe("buf curl --schema proto after npm start's preparation, on a fresh clone", () => {
  let clone: string;
  let server: TestServer;
  beforeAll(async () => {
    // A fresh clone: the tracked files buf and the start hook read (the console's build reads its sources, the
    // generated clients and the lock file), and neither .proto-deps/ nor console/dist/ (both git-ignored).
    // It sits under node_modules/.cache so that the hook's scripts resolve the installed packages
    // by walking up, with no symlink to node_modules that an install step could empty.
    mkdirSync(join(repoRoot, "node_modules/.cache"), { recursive: true });
    clone = mkdtempSync(join(repoRoot, "node_modules/.cache/anvil-fresh-clone-"));
    for (const f of ["proto", ".ci", "buf.yaml", "console", "gen", "package.json", "package-lock.json", "tsconfig.json"]) {
      cpSync(join(repoRoot, f), join(clone, f), { recursive: true, filter: (from) => !from.startsWith(join(repoRoot, "console", "dist")) });
    }
    server = await startServer(databaseKinds[0]!);
  });
  afterAll(async () => {
    await server?.close();
    if (clone) rmSync(clone, { recursive: true, force: true });
  });

  it("finds every import the protos need", async () => {
    const scripts = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
    // What `npm start` runs before the gateway, minus its install step (node_modules is current here).
    const [install, ...rest] = scripts.prestart!.split("&&").map((c) => c.trim());
    expect(install).toBe("node .ci/ensure-deps.mjs");
    for (const command of rest) await run("sh", ["-c", command], { cwd: clone, timeout: 60_000 });
    const result = await runBuf(
      ["curl", "--http2-prior-knowledge", "--protocol", "grpc", "--schema", "proto", "-H", `Authorization: Bearer ${await server.token()}`, "-d", '{"page_size": 10}', `${server.baseUrl}/anvil.users.v1.UserService/ListUsers`],
      clone,
    );
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toBeTypeOf("object");
  });
});
