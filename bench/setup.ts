import { createCredentials } from "./fixtures/credentials.js";
import { createBenchDatabase } from "./fixtures/database.js";
import { ensureH2load } from "./fixtures/h2load.js";
import { startBenchIssuer } from "./fixtures/oidc-issuer.js";
import type { BenchContext } from "./protocol/context.js";
import type { BenchSettings } from "./settings.js";

/** Everything a run needs before the first server starts, and how to undo it. */
export interface BenchSetup {
  readonly ctx: BenchContext;
  /** Environment every server process gets. */
  readonly serverEnv: NodeJS.ProcessEnv;
  /**
   * What the rate-limited servers add: the bench key with a limited tier whose bucket is too large to run dry in a
   * run, so every call pays for its bucket and none is refused.
   */
  readonly limitedEnv: NodeJS.ProcessEnv;
  teardown(): Promise<void>;
}

const tenant = "acme";

/**
 * Installs h2load if missing, writes a keys file and mints a token, creates
 * and seeds a fresh PostgreSQL database, and builds the environment the
 * servers run with: Anvil's real configuration (DATABASE_URL,
 * ANVIL_KEYS_FILE, LOG_LEVEL=warn) plus the bench context for the peers.
 */
export async function prepare(settings: BenchSettings, log: (line: string) => void): Promise<BenchSetup> {
  ensureH2load(log);
  const credentials = await createCredentials(tenant);
  log(`creating a database on ${redact(settings.databaseUrl)} and seeding ${settings.seedRows} users`);
  const database = await createBenchDatabase(settings.databaseUrl, tenant, settings.seedRows).catch((err: unknown) => {
    credentials.remove();
    throw err;
  });
  const issuer = await startBenchIssuer(tenant);
  const ctx: BenchContext = {
    token: credentials.token,
    apiKey: database.apiKey,
    oidcToken: issuer.token,
    tenant,
    userId: database.user.id,
    userEmail: database.user.email,
    pageToken: database.deepPage.token,
    pageFirstId: database.deepPage.firstId,
    pageSize: 50,
    workflowId: database.workflowId,
  };
  const serverEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: "production",
    DATABASE_URL: database.url,
    ANVIL_KEYS_FILE: credentials.keysFile,
    ANVIL_OIDC_ISSUER: issuer.issuer,
    ANVIL_OIDC_AUDIENCE: issuer.audience,
    LOG_LEVEL: "warn",
    BENCH_CONTEXT: JSON.stringify(ctx),
  };
  const limitedEnv: NodeJS.ProcessEnv = {
    ANVIL_KEYS_FILE: credentials.limitedKeysFile,
    ANVIL_RATE_LIMIT_TIERS: JSON.stringify({ enterprise: { burst: 1e9, ratePerMinute: 1e9 } }),
  };
  return {
    ctx,
    serverEnv,
    limitedEnv,
    teardown: async () => {
      await database.drop();
      await issuer.close();
      credentials.remove();
      log(`dropped ${database.name}`);
    },
  };
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = "***";
  return u.toString();
}
