import { isTier, type Tier, tiers } from "./auth/principal.js";
import type { OidcOptions } from "./auth/oidc-verifier.js";
import { defaultAddressPolicy, parseTierPolicies, type RatePolicy, ratePolicy, type TierPolicies } from "./limits/rate-policy.js";
import { parseCidr } from "./rpc/client-address.js";

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
  /**
   * A data-directory tarball (PGlite's `dumpDataDir`) that an in-memory
   * embedded database (`memory://`) starts from instead of running initdb
   * (ANVIL_PGLITE_SEED). The test suites make one per run: initdb is most of
   * an embedded database's start.
   */
  readonly pgliteSeed: string | undefined;
  readonly keysFile: string;
  /** Whether `keysFile` is the default path, the only one created (with a fresh admin key) when missing. */
  readonly keysFileIsDefault: boolean;
  /** How often the keys file is checked for changes, in ms. */
  readonly keysPollMs: number;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  /** Largest request body accepted, in bytes, unless a route sets its own (src/server/body-limits.ts). */
  readonly maxRequestBytes: number;
  /** Largest webhook delivery body accepted, in bytes: deliveries are read before they are authenticated, so the cap is small. */
  readonly maxWebhookBytes: number;
  /** Largest artifact a task may upload, in bytes (streamed: never a request body held whole). */
  readonly maxArtifactBytes: number;
  /** How long each phase of a connection may take (see ConnectionLimits). */
  readonly connectionLimits: ConnectionLimits;
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
  /** Concurrent server streams (WatchOperation) one credential may hold on this instance. */
  readonly maxStreamsPerPrincipal: number;
  /** Waiting ClaimTask calls one credential may hold on this instance, sized for a fleet of workers sharing one key. */
  readonly maxClaimWaitsPerCredential: number;
  /** How often watches and waiting claims re-read the tables when no notification arrives. */
  readonly operationsPollMs: number;
  /** Keep-alive interval of idle WatchOperation streams (and the WebSocket ping interval). */
  readonly watchKeepAliveMs: number;
  /** WebSocket watches: how a connection without credentials has to send its `auth` message, and how much a slow client may leave unread. */
  readonly webSocket: WebSocketLimits;
  /** Serve `GET /metrics` on this port of its own instead of the API port (ANVIL_METRICS_PORT; unset: the API port). */
  readonly metricsPort: number | undefined;
  /** Bearer token a scrape of /metrics must send (ANVIL_METRICS_TOKEN; unset: none needed). */
  readonly metricsToken: string | undefined;
  /** Attempts a task gets before its operation fails. */
  readonly taskMaxAttempts: number;
  /** Delay before a task's first retry, doubled for each later one up to taskRetryMaxMs. */
  readonly taskRetryBaseMs: number;
  /** The longest wait between retries (ANVIL_TASK_RETRY_MAX_MS): the doubling stops there. */
  readonly taskRetryMaxMs: number;
  /** How long an API key read from the database is trusted without a revocation notice (the backstop of LISTEN/NOTIFY). */
  readonly apiKeyCacheMs: number;
  /** The OpenID provider whose tokens are accepted (ANVIL_OIDC_*); undefined: OIDC off. */
  readonly oidc: OidcOptions | undefined;
  /** Longest lifetime (`exp − iat`) of a service-account token, in seconds. */
  readonly maxTokenLifetimeSec: number;
  /** How a stop signal is handled (ANVIL_DRAIN_DELAY, ANVIL_SHUTDOWN_TIMEOUT). */
  readonly shutdown: ShutdownSettings;
  /** What the background sweeper keeps and how often it runs. */
  readonly housekeeping: HousekeepingSettings;
  /** Rate limits: per tier, per client address, and where the buckets live. */
  readonly rateLimits: RateLimitSettings;
  /** Addresses and CIDR ranges of proxies whose X-Forwarded-For is believed (ANVIL_TRUSTED_PROXIES). */
  readonly trustedProxies: readonly string[];
  /** Default tier of each tenant's callers whose credential names none (ANVIL_TENANT_TIERS). */
  readonly tenantTiers: ReadonlyMap<string, Tier>;
  /**
   * Whether changes and refusals are written to the audit log (ANVIL_AUDIT, default on). Off is for benchmarks and
   * throw-away development databases: nothing records who changed what.
   */
  readonly audit: boolean;
  /** How long audit events are kept, in ms (ANVIL_AUDIT_RETENTION, a duration such as `90d`); housekeeping deletes older ones. */
  readonly auditRetentionMs: number;
  /** Refusals the audit queue holds before it drops (and counts) more (ANVIL_AUDIT_QUEUE_CAPACITY). */
  readonly auditQueueCapacity: number;
  /** How often queued refusals are written, at the latest (ANVIL_AUDIT_FLUSH_MS). */
  readonly auditFlushMs: number;
}

/** How the gateway stops on SIGTERM (see src/server/shutdown.ts). */
export interface ShutdownSettings {
  /** How long it keeps serving, already reporting NOT_SERVING, so load balancers move traffic away first. */
  readonly drainDelayMs: number;
  /** How long in-flight calls then get to finish before their connections are cut. */
  readonly shutdownTimeoutMs: number;
}

/** The housekeeping sweeper's settings (see src/housekeeping/). */
export interface HousekeepingSettings {
  /** Time between two sweeps; also how soon another instance takes over a dead sweeper. */
  readonly intervalMs: number;
  /** How long a finished operation (with its events and tasks) is kept after it ended. */
  readonly operationsRetentionMs: number;
  /** How long a create's `request_id` is remembered for retries. */
  readonly idempotencyWindowMs: number;
}

/** Rate-limit settings (see src/limits/). */
export interface RateLimitSettings {
  /** Each limited tier's burst and rate (ANVIL_RATE_LIMIT_TIERS overrides the seed's numbers). */
  readonly tiers: TierPolicies;
  /** Calls without a valid credential and calls to public endpoints, per client address (ANVIL_RATE_LIMIT_IP). */
  readonly address: RatePolicy;
  /** Redis shared by every instance (ANVIL_REDIS_URL); undefined: buckets in memory, per instance. */
  readonly redisUrl: string | undefined;
  /** Prefix of the bucket keys in Redis (ANVIL_REDIS_PREFIX). */
  readonly redisPrefix: string;
  /** How long a Redis command may take before the call is limited locally instead (ANVIL_REDIS_TIMEOUT_MS). */
  readonly redisTimeoutMs: number;
}

/** Limits of WebSocket watches (src/server/websocket/). */
export interface WebSocketLimits {
  /** A connection that brought no credential must send its `{"type":"auth"}` message within this (ANVIL_WS_AUTH_TIMEOUT_MS). */
  readonly authTimeoutMs: number;
  /** Bytes sent but not yet taken by the client beyond which the watch stops reading events (ANVIL_WS_SEND_BUFFER_BYTES). */
  readonly sendBufferBytes: number;
  /** How long the send buffer may stay over its bound before the socket is closed as a slow consumer (ANVIL_WS_SLOW_CONSUMER_MS). */
  readonly slowConsumerMs: number;
}

/**
 * Time bounds of a connection, phase by phase, so that no socket is held
 * for free: a client that is silent, trickles its headers or body, or keeps
 * an idle connection open is cut after a bounded time. The defaults are
 * those of a gateway facing the public internet directly.
 */
export interface ConnectionLimits {
  /**
   * From accepting a connection until its protocol is known: the first
   * bytes of a cleartext connection (all 24 bytes of the HTTP/2 preface) or
   * the TLS handshake.
   */
  readonly sniffTimeoutMs: number;
  /** HTTP/1.1: from a request's first byte until its headers are complete. */
  readonly headersTimeoutMs: number;
  /** From a request's first byte until its body is complete (HTTP/1.1 and HTTP/2 alike). */
  readonly requestTimeoutMs: number;
  /**
   * A body a route streams as it arrives (an artifact upload) is not bound
   * by `requestTimeoutMs` but may go no longer than this without a piece.
   */
  readonly bodyIdleTimeoutMs: number;
  /** HTTP/1.1: how long a keep-alive connection may wait for its next request. */
  readonly keepAliveTimeoutMs: number;
  /** HTTP/2: how long a session may have no open stream before it gets GOAWAY and is closed. */
  readonly http2IdleTimeoutMs: number;
}

/** Where the service-account keys live unless ANVIL_KEYS_FILE says otherwise. */
export const defaultKeysFile = "./.anvil/service-accounts.json";

/** Values of ANVIL_REFLECTION. */
export type ReflectionAccess = "public" | "authenticated";

/** Reads the configuration from `env`, refusing values that make no sense. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    port: int(env, "PORT", 8080, 0, 65535),
    host: env.HOST ?? "0.0.0.0",
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: env.ANVIL_DATA_DIR ?? "./.anvil/data",
    pgliteSeed: env.ANVIL_PGLITE_SEED || undefined,
    keysFile: env.ANVIL_KEYS_FILE || defaultKeysFile,
    keysFileIsDefault: !env.ANVIL_KEYS_FILE,
    keysPollMs: int(env, "ANVIL_KEYS_POLL_MS", 1_000, 50, 3_600_000),
    tlsCert: env.TLS_CERT || undefined,
    tlsKey: env.TLS_KEY || undefined,
    maxRequestBytes: int(env, "ANVIL_MAX_REQUEST_BYTES", 10 * 1024 * 1024, 1024, 1024 ** 3),
    maxWebhookBytes: int(env, "ANVIL_MAX_WEBHOOK_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
    maxArtifactBytes: int(env, "ANVIL_MAX_ARTIFACT_BYTES", 100 * 1024 * 1024, 1, 1024 ** 4),
    connectionLimits: connectionLimits(env, {
      sniffTimeoutMs: int(env, "ANVIL_SNIFF_TIMEOUT_MS", 10_000, 10, 600_000),
      headersTimeoutMs: int(env, "ANVIL_HEADERS_TIMEOUT_MS", 15_000, 10, 600_000),
      requestTimeoutMs: int(env, "ANVIL_REQUEST_TIMEOUT_MS", 60_000, 10, 3_600_000),
      // Longer than the 60 s idle timeout of common load balancers, so the
      // gateway never closes a connection a balancer is about to reuse.
      keepAliveTimeoutMs: int(env, "ANVIL_KEEPALIVE_TIMEOUT_MS", 65_000, 10, 3_600_000),
      http2IdleTimeoutMs: int(env, "ANVIL_HTTP2_IDLE_TIMEOUT_MS", 65_000, 10, 3_600_000),
    }),
    dbPoolSize: int(env, "ANVIL_DB_POOL_SIZE", 10, 1, 1000),
    statementTimeoutMs: int(env, "ANVIL_STATEMENT_TIMEOUT_MS", 15_000, 100, 3_600_000),
    logLevel: env.LOG_LEVEL ?? "info",
    fastUnary: onOff(env, "ANVIL_FAST_UNARY", true),
    reflection: reflectionAccess(env.ANVIL_REFLECTION),
    corsOrigins: corsOrigins(env.ANVIL_CORS_ORIGINS),
    compressMinBytes: int(env, "ANVIL_COMPRESS_MIN_BYTES", 1024, 0, 1024 ** 3),
    maxStreamsPerPrincipal: int(env, "ANVIL_MAX_STREAMS_PER_PRINCIPAL", 16, 1, 100_000),
    maxClaimWaitsPerCredential: int(env, "ANVIL_MAX_CLAIM_WAITS_PER_CREDENTIAL", 1_024, 1, 1_000_000),
    operationsPollMs: int(env, "ANVIL_OPERATIONS_POLL_MS", 1_000, 10, 60_000),
    watchKeepAliveMs: int(env, "ANVIL_WATCH_KEEPALIVE_MS", 15_000, 10, 3_600_000),
    webSocket: {
      authTimeoutMs: int(env, "ANVIL_WS_AUTH_TIMEOUT_MS", 5_000, 10, 60_000),
      sendBufferBytes: int(env, "ANVIL_WS_SEND_BUFFER_BYTES", 1024 ** 2, 1024, 1024 ** 3),
      slowConsumerMs: int(env, "ANVIL_WS_SLOW_CONSUMER_MS", 10_000, 10, 600_000),
    },
    metricsPort: env.ANVIL_METRICS_PORT ? int(env, "ANVIL_METRICS_PORT", 0, 0, 65_535) : undefined,
    metricsToken: env.ANVIL_METRICS_TOKEN || undefined,
    taskMaxAttempts: int(env, "ANVIL_TASK_MAX_ATTEMPTS", 3, 1, 100),
    taskRetryBaseMs: int(env, "ANVIL_TASK_RETRY_BASE_MS", 1_000, 0, 3_600_000),
    taskRetryMaxMs: int(env, "ANVIL_TASK_RETRY_MAX_MS", 300_000, 0, 86_400_000),
    apiKeyCacheMs: int(env, "ANVIL_API_KEY_CACHE_MS", 10_000, 0, 300_000),
    oidc: oidcOptions(env),
    maxTokenLifetimeSec: int(env, "ANVIL_MAX_TOKEN_LIFETIME_SEC", 86_400, 60, 31_536_000),
    shutdown: {
      drainDelayMs: duration(env, "ANVIL_DRAIN_DELAY", 5 * second, 0, hour),
      shutdownTimeoutMs: duration(env, "ANVIL_SHUTDOWN_TIMEOUT", 10 * second, 0, hour),
    },
    housekeeping: {
      intervalMs: duration(env, "ANVIL_HOUSEKEEPING_INTERVAL", 10 * second, 10, day),
      operationsRetentionMs: duration(env, "ANVIL_OPERATIONS_RETENTION", 7 * day, 0, 3_650 * day),
      idempotencyWindowMs: duration(env, "ANVIL_IDEMPOTENCY_WINDOW", day, 0, 3_650 * day),
    },
    rateLimits: {
      tiers: parseTierPolicies(env.ANVIL_RATE_LIMIT_TIERS),
      address: addressPolicy(env.ANVIL_RATE_LIMIT_IP),
      redisUrl: redisUrl(env.ANVIL_REDIS_URL),
      redisPrefix: env.ANVIL_REDIS_PREFIX || "anvil:ratelimit:",
      redisTimeoutMs: int(env, "ANVIL_REDIS_TIMEOUT_MS", 250, 10, 60_000),
    },
    trustedProxies: trustedProxies(env.ANVIL_TRUSTED_PROXIES),
    tenantTiers: tenantTiers(env.ANVIL_TENANT_TIERS),
    audit: onOff(env, "ANVIL_AUDIT", true),
    auditRetentionMs: duration(env, "ANVIL_AUDIT_RETENTION", 90 * day, 60 * second, 36_500 * day),
    auditQueueCapacity: int(env, "ANVIL_AUDIT_QUEUE_CAPACITY", 10_000, 1, 10_000_000),
    auditFlushMs: int(env, "ANVIL_AUDIT_FLUSH_MS", 100, 1, 60_000),
  };
}

const second = 1_000;
const hour = 3_600 * second;
const day = 24 * hour;
const durationUnits: Record<string, number> = { ms: 1, s: second, m: 60 * second, h: hour, d: day };

/** A duration such as `500ms`, `5s`, `1.5m`, `24h` or `7d`, in milliseconds (a bare number other than 0 is refused: its unit would be a guess). */
function duration(env: NodeJS.ProcessEnv, name: string, fallbackMs: number, minMs: number, maxMs: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallbackMs;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(raw.trim());
  const value = raw.trim() === "0" ? 0 : match ? Math.round(Number(match[1]) * durationUnits[match[2]!]!) : Number.NaN;
  if (!(value >= minMs && value <= maxMs)) {
    throw new Error(`${name} must be a duration like 500ms, 5s, 10m, 24h or 7d, from ${formatDuration(minMs)} to ${formatDuration(maxMs)}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function formatDuration(ms: number): string {
  const [unit, size] = Object.entries(durationUnits).reverse().find(([, size]) => ms % size === 0) ?? ["ms", 1];
  return `${ms / size}${unit}`;
}

function addressPolicy(raw: string | undefined): RatePolicy {
  if (raw === undefined || raw.trim() === "") return defaultAddressPolicy;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error("ANVIL_RATE_LIMIT_IP must be a JSON object like {\"burst\":20,\"ratePerMinute\":10}");
  }
  return ratePolicy("ip", parsed, "ANVIL_RATE_LIMIT_IP");
}

function redisUrl(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === "") return undefined;
  if (!URL.canParse(raw) || !["redis:", "rediss:"].includes(new URL(raw).protocol)) {
    throw new Error(`ANVIL_REDIS_URL must be a redis:// or rediss:// URL, got ${JSON.stringify(raw)}`);
  }
  return raw;
}

function trustedProxies(raw: string | undefined): string[] {
  const entries = (raw ?? "").split(",").map((e) => e.trim()).filter((e) => e !== "");
  for (const entry of entries) parseCidr(entry);
  return entries;
}

function tenantTiers(raw: string | undefined): Map<string, Tier> {
  if (raw === undefined || raw.trim() === "") return new Map();
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error("ANVIL_TENANT_TIERS must be a JSON object like {\"acme\":\"pro\"}");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("ANVIL_TENANT_TIERS must be a JSON object");
  const out = new Map<string, Tier>();
  for (const [tenant, tier] of Object.entries(parsed)) {
    if (typeof tier !== "string" || !isTier(tier)) throw new Error(`ANVIL_TENANT_TIERS.${tenant} must be one of ${tiers.join(", ")}`);
    out.set(tenant, tier);
  }
  return out;
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

function connectionLimits(env: NodeJS.ProcessEnv, limits: Omit<ConnectionLimits, "bodyIdleTimeoutMs">): ConnectionLimits {
  // Headers are part of the request: a bound on them longer than on the whole request means nothing.
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new Error(`ANVIL_HEADERS_TIMEOUT_MS (${limits.headersTimeoutMs}) must not exceed ANVIL_REQUEST_TIMEOUT_MS (${limits.requestTimeoutMs})`);
  }
  // By default a stalled stream is cut no later than a whole request would be.
  return { ...limits, bodyIdleTimeoutMs: int(env, "ANVIL_BODY_IDLE_TIMEOUT_MS", Math.min(15_000, limits.requestTimeoutMs), 10, 3_600_000) };
}

function oidcOptions(env: NodeJS.ProcessEnv): OidcOptions | undefined {
  const issuer = env.ANVIL_OIDC_ISSUER;
  if (issuer === undefined || issuer === "") {
    if (env.ANVIL_OIDC_CONSOLE_CLIENT_ID) throw new Error("ANVIL_OIDC_CONSOLE_CLIENT_ID needs ANVIL_OIDC_ISSUER (the provider the console signs in with)");
    return undefined;
  }
  if (!URL.canParse(issuer)) throw new Error(`ANVIL_OIDC_ISSUER must be a URL, got ${JSON.stringify(issuer)}`);
  const audience = env.ANVIL_OIDC_AUDIENCE;
  if (audience === undefined || audience === "") throw new Error("ANVIL_OIDC_AUDIENCE must be set with ANVIL_OIDC_ISSUER (the audience Anvil's tokens carry)");
  const tier = env.ANVIL_OIDC_TIER || "free";
  if (!isTier(tier)) throw new Error(`ANVIL_OIDC_TIER must be one of ${tiers.join(", ")}, got ${JSON.stringify(tier)}`);
  return {
    issuer,
    audience,
    tenantClaim: env.ANVIL_OIDC_TENANT_CLAIM || "tenant",
    rolesClaim: env.ANVIL_OIDC_ROLES_CLAIM || "roles",
    fixedTenant: env.ANVIL_OIDC_TENANT || undefined,
    jwksCooldownMs: int(env, "ANVIL_OIDC_JWKS_COOLDOWN_MS", 30_000, 0, 3_600_000),
    tier,
    tierClaim: env.ANVIL_OIDC_TIER_CLAIM || "tier",
    tenantTiers: tenantTiers(env.ANVIL_TENANT_TIERS),
    consoleClientId: env.ANVIL_OIDC_CONSOLE_CLIENT_ID || undefined,
    consoleScopes: consoleScopes(env.ANVIL_OIDC_CONSOLE_SCOPES),
  };
}

/** The console's sign-in scopes: space- or comma-separated, `openid` always among them (first). */
function consoleScopes(raw: string | undefined): string[] {
  const named = (raw || "openid profile").split(/[\s,]+/).filter((s) => s !== "" && s !== "openid");
  return ["openid", ...new Set(named)];
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
