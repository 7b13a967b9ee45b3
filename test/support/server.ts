import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino, { type Logger } from "pino";
import { loadConfig } from "../../src/config.js";
import { build, type App } from "../../src/server/build.js";
import { listen, type Listening } from "../../src/server/listener.js";
import { createTestDatabase, type DatabaseKind, type TestDatabase } from "./databases.js";
import { mintToken, type MintOptions, type TestKey, testKeys, testLimitEnv } from "./tokens.js";

/** A real gateway listening on a free loopback port, with its own fresh database. */
export interface TestServer {
  readonly kind: DatabaseKind;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string;
  readonly app: App;
  readonly database: TestDatabase;
  /** Test keys by id (see tokens.ts). */
  readonly keys: Record<string, TestKey>;
  /** The keys file the server reads (tests rewrite it to see reloads). */
  readonly keysFile: string;
  /** A valid token for a key (default `acme-admin`). */
  token(keyId?: string, options?: MintOptions): Promise<string>;
  /** Stops the server and drops its database. */
  close(): Promise<void>;
}

/** Options of startServer. */
export interface StartOptions {
  /** Extra environment for loadConfig (e.g. ANVIL_MAX_REQUEST_BYTES). */
  env?: Record<string, string>;
  /** Use this database instead of creating one (for multi-instance tests). */
  database?: TestDatabase;
  /** Log here instead of a pino logger at TEST_LOG_LEVEL (to read the access log). */
  log?: Logger;
}

/** Builds the gateway exactly as main.ts does and listens on 127.0.0.1:0. */
export async function startServer(kind: DatabaseKind, options: StartOptions = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "anvil-test-"));
  const keys = testKeys();
  const keysFile = join(dir, "service-accounts.json");
  writeFileSync(keysFile, JSON.stringify({ keys }));
  const database = options.database ?? (await createTestDatabase(kind));
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    ANVIL_KEYS_FILE: keysFile,
    ANVIL_DATA_DIR: "memory://",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...testLimitEnv,
    // Set by the suites' global setup (pglite-seed.ts): an embedded database skips initdb.
    ...(process.env.ANVIL_PGLITE_SEED ? { ANVIL_PGLITE_SEED: process.env.ANVIL_PGLITE_SEED } : {}),
    ...(database.url ? { DATABASE_URL: database.url } : {}),
    ...options.env,
  });
  let app: App;
  try {
    app = await build(config, options.log ?? pino({ level: config.logLevel }));
  } catch (err) {
    if (!options.database) await database.drop();
    throw err;
  }
  const server: Listening = await listen(app.handle, { ...config, log: app.log }, app.upgrade);
  const byId = Object.fromEntries(keys.map((k) => [k.key_id, k]));
  return {
    kind,
    port: server.port,
    baseUrl: `http://127.0.0.1:${server.port}`,
    app,
    database,
    keys: byId,
    keysFile,
    token: (keyId = "acme-admin", o) => mintToken(byId[keyId]!, o),
    close: async () => {
      await server.close(100);
      await app.close();
      if (!options.database) await database.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
