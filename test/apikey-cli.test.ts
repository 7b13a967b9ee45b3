import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { clientFor } from "./support/clients.js";
import { startServer, type TestServer } from "./support/server.js";

/** `npm run apikey -- create|list|revoke` against a running gateway, with a service-account key from the keys file. */
describe("apikey CLI", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer("pglite");
  });
  afterAll(() => server?.close());

  const cli = async (...args: string[]) =>
    (await promisify(execFile)(process.execPath, ["--import", "tsx", "src/cli/apikey.ts", ...args, "--url", server.baseUrl, "--keys-file", server.keysFile, "--key", "acme-admin"])).stdout;

  it("creates a key and prints its secret once, lists it, revokes it", async () => {
    const secret = (await cli("create", "--name", "ci", "--roles", "viewer", "--expires", "30d")).trim();
    expect(secret).toMatch(/^anvil_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$/);
    await expect(clientFor(OperationService, "connect-json", server.baseUrl, secret).listOperations({})).resolves.toBeDefined();
    const listed = await cli("list");
    expect(listed).toMatch(/\tactive\tci\tviewer\tfree\texpires 20/);
    expect(listed).not.toContain(secret);
    const id = listed.split("\t")[0]!;
    expect(await cli("revoke", id)).toBe(`${id}\trevoked\n`);
    await expect(clientFor(OperationService, "connect-json", server.baseUrl, secret).listOperations({})).rejects.toThrow();
  });
});
