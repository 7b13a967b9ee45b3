import type { Interceptor } from "@connectrpc/connect";
import pino, { type Logger } from "pino";
import { ApiKeyCredentialRepository } from "../apikeys/api-key-credential.repository.js";
import { ApiKeyVerifier } from "../apikeys/api-key-verifier.js";
import { Authenticator } from "../auth/authenticator.js";
import { OidcVerifier } from "../auth/oidc-verifier.js";
import { ServiceAccountKeys } from "../auth/service-account-keys.js";
import { TokenVerifier } from "../auth/token-verifier.js";
import type { Config } from "../config.js";
import { type DatabaseHandle, openDatabase } from "../db/database.js";
import { migrateToLatest, schemaMismatch } from "../db/migrator.js";
import { UnitOfWork } from "../db/unit-of-work.js";
import { authInterceptor } from "../rpc/auth-interceptor.js";
import { CallAuthenticator } from "../rpc/call-authenticator.js";
import { ClientAddresses } from "../rpc/client-address.js";
import { rateLimitHeadersInterceptor } from "../rpc/rate-limit-headers.js";
import { MemoryBuckets } from "../limits/memory-buckets.js";
import { RateLimiter } from "../limits/rate-limiter.js";
import { RedisBuckets } from "../limits/redis-buckets.js";
import type { BucketStore } from "../limits/token-bucket.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { errorInterceptor } from "../rpc/error-interceptor.js";
import { declaredPermissions, readMethodPolicies } from "../rpc/method-policies.js";
import { permissionInterceptor } from "../rpc/permission-interceptor.js";
import { requestIdInterceptor } from "../rpc/request-id-interceptor.js";
import { OperationsModule } from "../operations/operations-module.js";
import { validationInterceptor } from "../rpc/validation-interceptor.js";
import { auditInterceptor, mutatingMethods } from "../rpc/audit-interceptor.js";
import { RefusalAudit } from "../rpc/refusal-audit.js";
import { AuditQueue } from "../audit/audit-queue.js";
import { AuditStore } from "../audit/audit-store.repository.js";
import { KeysetPager } from "../shared/keyset-pager.js";
import { PageTokens } from "../shared/page-token.js";
import { BodyLimits } from "./body-limits.js";
import { createConnectHandler, type NodeRequest, type NodeResponse, type RouteHandler } from "./connect-handler.js";
import { createConsoleRoute } from "./console-route.js";
import { createCors } from "./cors.js";
import { ServingMonitor } from "./health/serving-monitor.js";
import { createNotFound } from "./not-found.js";
import { createOpenApiRoute } from "./openapi/openapi-route.js";
import { withPrivateGetCaching } from "./private-caching.js";
import { limitedPerAddress } from "./address-limited-route.js";
import { createProbes } from "./probes.js";
import { createRestHandler } from "./rest/rest-handler.js";
import { buildRestRoutes } from "./rest/rest-routes.js";
import { sseBindings } from "./sse/watch-operation-sse.js";
import { useAllocationFreeUtf8Checks } from "./text-encoding.js";
import type { UpgradeHandler } from "./listener.js";
import { createWatchSocketRoute } from "./websocket/watch-socket-route.js";
import { TransferGarbage } from "./transfer-garbage.js";
import { createWebhookDeliveryRoute, webhookRouteLabels } from "./webhooks/webhook-delivery-route.js";
import { WebhookDeliveriesService } from "../webhooks/webhook-deliveries.service.js";
import { WebhookEndpointRepository } from "../webhooks/webhook-endpoint.repository.js";
import { OperationService, WorkerService } from "../../gen/anvil/operations/v1/operations_pb.js";
import { artifactHttpMethods, artifactRouteLabels, createArtifactRoutes } from "./artifacts/artifact-routes.js";
import { Metrics } from "../metrics/metrics.js";
import { createMetricsRoute } from "../metrics/metrics-route.js";
import { readQueueSnapshot } from "../metrics/queue-snapshot.js";
import { metricsInterceptor } from "../rpc/metrics-interceptor.js";
import { CallObserver } from "./call-observer.js";
import { tracingEnabled } from "../tracing/tracing.js";
import { statementSpan } from "../tracing/work-spans.js";
import { restRouteLabel } from "./rest/rest-handler.js";
import { Housekeeper } from "../housekeeping/housekeeper.js";
import type { HousekeepingJob } from "../housekeeping/housekeeping-job.js";
import { leaseRecovery } from "../housekeeping/lease-recovery-job.js";
import { abandonedUploads, type AuditRetentionStore, auditRetention, idempotencyRetention, operationsRetention } from "../housekeeping/retention-jobs.js";
import { RetentionRepository } from "../housekeeping/retention.repository.js";
import { apiServices, infrastructureAccess, infrastructureServices, registerServices } from "./services.js";

/** A built gateway: the request handler every listener uses, and its resources. */
export interface App {
  readonly handle: (req: NodeRequest, res: NodeResponse) => void;
  /** HTTP/1.1 upgrade requests: the WebSocket route (`GET /ws/operations/{id}`). */
  readonly upgrade: UpgradeHandler;
  readonly database: DatabaseHandle;
  /** The service-account keys, re-read when the file changes; `reload()` on SIGHUP. */
  readonly keys: ServiceAccountKeys;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** The audit log across tenants: retention's `deleteOlderThan` (housekeeping applies config.auditRetentionMs). */
  readonly auditStore: AuditStore;
  /** `GET /metrics`: on the API port unless the configuration gives it a port of its own (then main.ts serves it there). */
  readonly metricsRoute: RouteHandler;
  /** Readiness turns NOT_SERVING (the drain delay): every call is still served. */
  unready(): void;
  /** Readiness NOT_SERVING, waiting ClaimTask calls return empty and streams end UNAVAILABLE, now and from now on. */
  drain(): void;
  close(): Promise<void>;
}

/**
 * Builds the gateway from its configuration: opens and migrates the
 * database, loads the signing keys, reads every method's policy from the
 * protos (refusing undeclared ones), and composes the interceptor chain and
 * routes. Only main.ts listens; tests build the same app.
 */
export async function build(config: Config, log: Logger = pino({ level: config.logLevel })): Promise<App> {
  useAllocationFreeUtf8Checks();
  // Only the default file is created when missing: a named file that is missing is a mistake to report, not to paper over.
  const keys = new ServiceAccountKeys(config.keysFile, config.keysFileIsDefault, log);
  const access = infrastructureAccess(config.reflection);
  const policies = readMethodPolicies([...apiServices, ...infrastructureServices], access.publicServices, access.permissions);
  const metrics = new Metrics();
  const database = await openDatabase(
    config.databaseUrl
      ? { kind: "postgres", url: config.databaseUrl, poolSize: config.dbPoolSize, statementTimeoutMs: config.statementTimeoutMs }
      : { kind: "pglite", dataDir: config.dataDir, seed: config.pgliteSeed },
    log,
    // Each statement is timed by name for the metrics and, when tracing is on, traced as a span.
    tracingEnabled()
      ? (name, seconds, failed, queryId) => (metrics.db.statement(name, seconds, failed), statementSpan(name, seconds, failed, queryId))
      : metrics.db.statement,
  );
  metrics.db.watchPool(() => database.poolStats());
  let housekeeper: Housekeeper | undefined;
  const closing: Array<() => Promise<void>> = [];
  try {
    await migrateToLatest(database.db);
    const key = await database.db
      .selectFrom("anvil_settings")
      .select("value")
      .where("name", "=", "page_token_key")
      .executeTakeFirstOrThrow();
    const uow = new UnitOfWork(database.db, metrics.db, database);
    const pageTokens = new PageTokens(Buffer.from(key.value, "utf8"));
    const pager = new KeysetPager(pageTokens);
    const operations = await OperationsModule.start(database, uow, pager, { ...operationsSettings(config), events: metrics.operations }, log);
    metrics.operations.watch({ snapshot: () => readQueueSnapshot(database.db), openStreams: () => operations.slots.total, claimWaits: () => operations.claimWaits.total, cacheMs: 5_000 });
    const apiKeyCredentials = new ApiKeyCredentialRepository(database.db);
    const apiKeys = new ApiKeyVerifier(apiKeyCredentials, log, { cacheMs: config.apiKeyCacheMs });
    await apiKeys.listen(database);
    const serviceAccounts = new TokenVerifier(keys, { maxLifetimeSec: config.maxTokenLifetimeSec });
    keys.onChange((ids) => ids.forEach((id) => serviceAccounts.forgetKey(id)));
    keys.watch(config.keysPollMs);
    const limiter = new RateLimiter(await bucketStore(config, log, metrics), {
      tiers: config.rateLimits.tiers,
      address: config.rateLimits.address,
      events: metrics.rateLimits,
    });
    closing.push(() => limiter.close());
    const credentials = new Authenticator({ serviceAccounts, apiKeys, oidc: config.oidc && new OidcVerifier(config.oidc) });
    const authenticator = new CallAuthenticator(
      credentials,
      policies,
      { limiter, addresses: new ClientAddresses(config.trustedProxies), unlimitedServices: new Set([Health.typeName]) },
    );
    const auditStore = new AuditStore(database.db);
    housekeeper = startHousekeeping(config, database, operations, auditStore, metrics, log);
    const auditQueue = new AuditQueue(auditStore, log, {
      capacity: config.auditQueueCapacity,
      batchSize: 500,
      flushMs: config.auditFlushMs,
      // A refused credential's tenant: that of the key it names, even revoked or expired.
      tenantOf: async (claim) => (claim.kind === "api_key" ? (await apiKeyCredentials.find(claim.id))?.tenant : keys.get(claim.id)?.tenant),
      events: metrics.audit,
    });
    if (!config.audit) log.warn("the audit log is off (ANVIL_AUDIT=off): no change and no refusal is recorded");
    const refusals = new RefusalAudit(config.audit ? auditQueue : undefined);
    const served = [...apiServices, ...infrastructureServices];
    const bodyLimits = new BodyLimits(config.maxRequestBytes, served.flatMap((s) => s.methods));
    const interceptors: Interceptor[] = [
      requestIdInterceptor(),
      metricsInterceptor(),
      ...(config.audit ? [auditInterceptor(mutatingMethods(apiServices), refusals)] : []),
      // Outside the error interceptor: it adds the RateLimit fields to errors already mapped.
      rateLimitHeadersInterceptor(),
      errorInterceptor(log),
      authInterceptor(authenticator),
      permissionInterceptor(policies),
      validationInterceptor(apiServices.flatMap((s) => s.methods.map((m) => m.input))),
    ];
    let draining = false;
    const monitor = new ServingMonitor(() => database.ping(), () => draining, { schemaCheck: () => schemaMismatch(database.db) });
    const rest = buildRestRoutes(apiServices);
    metrics.rpc.preinitialise(served, [
      ...rest.routes.map((r) => ({ method: r.method, protocol: "rest" as const, route: restRouteLabel(r) })),
      ...artifactRouteLabels,
      ...webhookRouteLabels,
    ]);
    const metricsRoute = createMetricsRoute({ metrics, token: config.metricsToken });
    // Counts, traces and logs every call, whichever transport serves it.
    const calls = new CallObserver(metrics.rpc, log);
    const connect = createConnectHandler({
      calls,
      routes: registerServices({ uow, pager, monitor, operations, tenantTiers: config.tenantTiers, permissions: declaredPermissions(policies), oidc: config.oidc }),
      interceptors,
      authenticator,
      refusals,
      bodyLimits,
      compressMinBytes: config.compressMinBytes,
      fastUnary: config.fastUnary,
      log,
    });
    for (const m of rest.unannotated.filter((m) => !artifactHttpMethods.has(m))) log.warn({ rpc: `${m.parent.typeName}/${m.name}` }, "RPC has no google.api.http annotation: not reachable over REST");
    const routes: RouteHandler[] = [
      createCors({ origins: config.corsOrigins, restMethods: rest.routes.map((r) => r.httpMethod) }),
      withPrivateGetCaching(connect.handle),
      // Exact paths before the REST templates: a probe never waits on route matching.
      createProbes(database, monitor),
      createConsoleRoute(log, { identityProvider: config.oidc?.consoleClientId === undefined ? undefined : config.oidc.issuer }),
      ...(config.metricsPort === undefined ? [metricsRoute] : []),
      limitedPerAddress(createOpenApiRoute(config.compressMinBytes), "/openapi.json", authenticator, config.compressMinBytes),
      createWebhookDeliveryRoute({
        endpoints: new WebhookEndpointRepository(database.db),
        deliveries: new WebhookDeliveriesService(uow),
        unaryCalls: connect.unaryCalls,
        authenticator,
        credentials,
        refusals,
        auditChanges: config.audit,
        maxBodyBytes: config.maxWebhookBytes,
        compressMinBytes: config.compressMinBytes,
        calls,
        log,
      }),
      createArtifactRoutes({
        upload: connect.clientStreamCalls.get(WorkerService.method.uploadArtifact)!,
        download: connect.streamCalls.get(OperationService.method.downloadArtifact)!,
        authenticator,
        calls,
        compressMinBytes: config.compressMinBytes,
      }),
      createRestHandler({ routes: rest.routes, unaryCalls: connect.unaryCalls, streamCalls: connect.streamCalls, streamHandlers: connect.handlers, sse: sseBindings, authenticator, refusals, bodyLimits, compressMinBytes: config.compressMinBytes, log, calls }),
    ];
    const watchMethod = OperationService.method.watchOperation;
    const sockets = createWatchSocketRoute({
      method: watchMethod,
      call: connect.streamCalls.get(watchMethod)!,
      authenticator,
      limits: config.webSocket,
      pingMs: config.watchKeepAliveMs,
      calls,
      log,
    });
    const notFound = createNotFound(new Set(served.map((s) => s.typeName)));
    const handle = (req: NodeRequest, res: NodeResponse) => {
      for (const route of routes) if (route(req, res)) return;
      notFound(req, res);
    };
    return {
      handle,
      upgrade: (req, socket, head) => sockets.upgrade(req, socket, head),
      database,
      keys,
      log,
      metrics,
      metricsRoute,
      unready: () => {
        draining = true;
      },
      drain: () => {
        draining = true;
        operations.drain();
        sockets.drain();
      },
      auditStore,
      close: async () => {
        await housekeeper?.close();
        await operations.close();
        await auditQueue.close();
        await apiKeys.close();
        for (const close of closing) await close();
        keys.close();
        await database.close();
      },
    };
  } catch (err) {
    await housekeeper?.close();
    for (const close of closing) await close();
    await database.close();
    throw err;
  }
}

/**
 * Starts the cluster's housekeeping sweeper with every retention job. A
 * capability whose tables need upkeep adds its job to this list.
 */
function startHousekeeping(config: Config, database: DatabaseHandle, operations: OperationsModule, audit: AuditRetentionStore, metrics: Metrics, log: Logger): Housekeeper {
  const retention = new RetentionRepository(database.db);
  const settings = config.housekeeping;
  const jobs: HousekeepingJob[] = [
    leaseRecovery(retention, operations),
    operationsRetention(retention, settings.operationsRetentionMs),
    idempotencyRetention(retention, settings.idempotencyWindowMs),
    abandonedUploads(retention),
    auditRetention(audit, config.auditRetentionMs),
  ];
  metrics.housekeeping.preinitialise(jobs);
  const housekeeper = new Housekeeper({
    lock: database.sessionLock("anvil.housekeeping"),
    jobs,
    intervalMs: settings.intervalMs,
    log: log.child({ component: "housekeeping" }),
    events: metrics.housekeeping,
  });
  housekeeper.start();
  return housekeeper;
}

/** Where the rate-limit buckets live: Redis shared by every instance when configured, else this process. */
async function bucketStore(config: Config, log: Logger, metrics: Metrics): Promise<BucketStore> {
  const { redisUrl, redisPrefix, redisTimeoutMs } = config.rateLimits;
  if (redisUrl === undefined) return new MemoryBuckets();
  const store = new RedisBuckets({ url: redisUrl, keyPrefix: redisPrefix, commandTimeoutMs: redisTimeoutMs }, log, () => metrics.rateLimits.fellBack());
  await store.ready(1_000);
  return store;
}

/** The operations capability's settings, from the gateway's configuration. */
function operationsSettings(config: Config) {
  return {
    queue: { maxAttempts: config.taskMaxAttempts, retryBaseMs: config.taskRetryBaseMs, retryMaxMs: config.taskRetryMaxMs },
    watch: { pollMs: config.operationsPollMs, keepAliveMs: config.watchKeepAliveMs, batchSize: 100 },
    maxStreamsPerPrincipal: config.maxStreamsPerPrincipal,
    maxClaimWaitsPerCredential: config.maxClaimWaitsPerCredential,
    maxArtifactBytes: config.maxArtifactBytes,
    // A minor collection per 2 MiB moved (at most one per 50 ms) keeps a transfer's dead buffers to a few MiB.
    artifactBytesMoved: new TransferGarbage({ everyBytes: 2 * 1024 * 1024, minIntervalMs: 50 }).moved,
  };
}
