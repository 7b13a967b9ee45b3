import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gateway-process.js";
import { startServer, type TestServer } from "./support/server.js";
import { mintToken, type TestKey, testKeys } from "./support/tokens.js";

/**
 * The service-account keys file, hardened: re-read on change and on SIGHUP
 * without a restart, a removed or expired key stops its (cached) tokens
 * within seconds, a file that no longer parses keeps the keys that were
 * loaded, and a named file that is missing stops start-up with a clear
 * message.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `call` until it fails UNAUTHENTICATED, returning the ms it took (Infinity past `limitMs`). */
async function refusedAfter(call: () => Promise<unknown>, limitMs: number): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < limitMs) {
    const ok = await call().then(() => true, () => false);
    if (!ok) {
      await expectCode(call(), Code.Unauthenticated);
      return Date.now() - start;
    }
    await sleep(50);
  }
  return Number.POSITIVE_INFINITY;
}

describe.each(databaseKinds)("keys file on %s", (kind) => {
  let server: TestServer;
  let keys: TestKey[];
  const write = (k: readonly TestKey[]) => writeFileSync(server.keysFile, JSON.stringify({ keys: k }));
  const ops = (token: string) => clientFor(OperationService, "connect-json", server.baseUrl, token).listOperations({});

  beforeAll(async () => {
    server = await startServer(kind, { env: { ANVIL_KEYS_POLL_MS: "100" } });
    keys = Object.values(server.keys);
  });
  afterAll(() => server?.close());

  it("stops a removed key's cached tokens within seconds, and accepts an added key", async () => {
    const token = await server.token("acme-viewer");
    await expect(ops(token)).resolves.toBeDefined();
    const added = { ...keys[0]!, key_id: "acme-new", principal: "new@acme" };
    write([...keys.filter((k) => k.key_id !== "acme-viewer"), added]);
    const took = await refusedAfter(() => ops(token), 5_000);
    console.log(`removed key refused after ${took} ms`);
    expect(took).toBeLessThan(3_000);
    await expect(ops(await mintToken(added))).resolves.toBeDefined();
    // Unchanged keys keep working throughout.
    await expect(ops(await server.token("acme-admin"))).resolves.toBeDefined();
  });

  it("stops a key's cached tokens when the key expires", async () => {
    const editor = keys.find((k) => k.key_id === "acme-editor")!;
    write(keys.map((k) => (k === editor ? { ...k, expires_at: new Date(Date.now() + 1_500).toISOString() } : k)));
    await sleep(400);
    const token = await mintToken(editor);
    await expect(ops(token)).resolves.toBeDefined();
    expect(await refusedAfter(() => ops(token), 4_000)).toBeLessThan(3_000);
    write(keys);
  });

  it("keeps the loaded keys when the file no longer parses", async () => {
    write(keys);
    await sleep(400);
    writeFileSync(server.keysFile, "{ not json");
    await sleep(400);
    await expect(ops(await server.token("acme-admin"))).resolves.toBeDefined();
    write(keys);
  });
});

describe("keys file start-up and SIGHUP", () => {
  it("refuses to start when ANVIL_KEYS_FILE names a file that does not exist", async () => {
    const dir = mkdtempSync(join(tmpdir(), "anvil-keys-"));
    const missing = join(dir, "nope.json");
    await expect(startServer("pglite", { env: { ANVIL_KEYS_FILE: missing } })).rejects.toThrow(`keys file ${missing} does not exist`);
    rmSync(dir, { recursive: true, force: true });
  });

  let gateway: GatewayProcess;
  afterAll(() => gateway?.close());

  it("re-reads the file on SIGHUP", async () => {
    const keys = testKeys();
    // No polling to speak of: only the signal can explain a prompt reload.
    gateway = await startGatewayProcess("pglite", { keys, env: { ANVIL_KEYS_POLL_MS: "3600000" } });
    const token = await gateway.token("acme-viewer");
    const call = () => clientFor(OperationService, "connect-json", gateway.baseUrl, token).listOperations({});
    await expect(call()).resolves.toBeDefined();
    writeFileSync(gateway.keysFile, JSON.stringify({ keys: keys.filter((k) => k.key_id !== "acme-viewer") }));
    process.kill(gateway.pid, "SIGHUP");
    expect(await refusedAfter(call, 3_000)).toBeLessThan(1_000);
    expect(gateway.alive()).toBe(true);
  });
});
