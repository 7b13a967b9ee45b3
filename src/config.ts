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
  /** Serve unary RPCs on Anvil's fast path (default) or only through connect's universal handler. */
  readonly fastUnary: boolean;
  /** Who may use gRPC server reflection: anyone, or callers with a token granting `reflection.read`. */
  readonly reflection: ReflectionAccess;
  /** Browser origins allowed to call cross-origin (ANVIL_CORS_ORIGINS, comma-separated, `*` for any); empty: none. */
  readonly corsOrigins: readonly string[];
  /** Responses (and streamed messages) smaller than this many bytes are sent uncompressed. */
  readonly compressMinBytes: number;
  /** Concurrent server streams (WatchOperation) one principal may hold on this instance. */
  readonly maxStreamsPerPrincipal: number;
  /** How often watches and waiting claims re-read the tables when no notification arrives. */
  readonly operationsPollMs: number;
  /** Keep-alive interval of idle WatchOperation streams. */
  readonly watchKeepAliveMs: number;
  /** Attempts a task gets before its operation fails. */
  readonly taskMaxAttempts: number;
  /** Delay before a task's first retry, doubled for each later one (capped at 5 minutes). */
  readonly taskRetryBaseMs: number;
}

/** Values of ANVIL_REFLECTION. */
export type ReflectionAccess = "public" | "authenticated";

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
    fastUnary: onOff(env, "ANVIL_FAST_UNARY", true),
    reflection: reflectionAccess(env.ANVIL_REFLECTION),
    corsOrigins: corsOrigins(env.ANVIL_CORS_ORIGINS),
    compressMinBytes: int(env, "ANVIL_COMPRESS_MIN_BYTES", 1024, 0, 1024 ** 3),
    maxStreamsPerPrincipal: int(env, "ANVIL_MAX_STREAMS_PER_PRINCIPAL", 16, 1, 100_000),
    operationsPollMs: int(env, "ANVIL_OPERATIONS_POLL_MS", 1_000, 10, 60_000),
    watchKeepAliveMs: int(env, "ANVIL_WATCH_KEEPALIVE_MS", 15_000, 10, 3_600_000),
    taskMaxAttempts: int(env, "ANVIL_TASK_MAX_ATTEMPTS", 3, 1, 100),
    taskRetryBaseMs: int(env, "ANVIL_TASK_RETRY_BASE_MS", 1_000, 0, 3_600_000),
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

function reflectionAccess(raw: string | undefined): ReflectionAccess {
  if (raw === undefined || raw === "" || raw === "public") return "public";
  if (raw === "authenticated") return "authenticated";
  throw new Error(`ANVIL_REFLECTION must be "public" or "authenticated", got ${JSON.stringify(raw)}`);
}

function onOff(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (raw === "on" || raw === "true" || raw === "1") return true;
  if (raw === "off" || raw === "false" || raw === "0") return false;
  throw new Error(`${name} must be "on" or "off", got ${JSON.stringify(raw)}`);
}

function corsOrigins(raw: string | undefined): string[] {
  const origins = (raw ?? "").split(",").map((o) => o.trim()).filter((o) => o !== "");
  for (const origin of origins) {
    // An origin is scheme://host[:port] exactly; anything else would never match a browser's Origin header.
    if (origin !== "*" && (!URL.canParse(origin) || new URL(origin).origin !== origin)) {
      throw new Error(`ANVIL_CORS_ORIGINS: ${JSON.stringify(origin)} is not an origin like https://app.example.com (or *)`);
    }
  }
  return origins;
}
