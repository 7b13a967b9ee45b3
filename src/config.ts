/**
 * Gateway configuration, read once from the environment. Everything the
 * process can be told lives here, with its default.
 */
export interface Config {
  readonly port: number;
  readonly host: string;
  /** PostgreSQL connection string; when absent the embedded database serves. */
  readonly databaseUrl: string | undefined;
  /** Folder of the embedded database (ignored with `databaseUrl`). */
  readonly dataDir: string;
  readonly keysFile: string;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  /** Largest request body accepted, in bytes. */
  readonly maxRequestBytes: number;
  /** Pool size for PostgreSQL. */
  readonly dbPoolSize: number;
  /** Upper bound of any statement when the client set no deadline. */
  readonly statementTimeoutMs: number;
  readonly logLevel: string;
}

/** Reads the configuration from `env`, refusing values that make no sense. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    port: int(env, "PORT", 8080, 0, 65535),
    host: env.HOST ?? "0.0.0.0",
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: env.ANVIL_DATA_DIR ?? "./.anvil/data",
    keysFile: env.ANVIL_KEYS_FILE ?? "./.anvil/service-accounts.json",
    tlsCert: env.TLS_CERT || undefined,
    tlsKey: env.TLS_KEY || undefined,
    maxRequestBytes: int(env, "ANVIL_MAX_REQUEST_BYTES", 10 * 1024 * 1024, 1024, 1024 ** 3),
    dbPoolSize: int(env, "ANVIL_DB_POOL_SIZE", 10, 1, 1000),
    statementTimeoutMs: int(env, "ANVIL_STATEMENT_TIMEOUT_MS", 15_000, 100, 3_600_000),
    logLevel: env.LOG_LEVEL ?? "info",
  };
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}
