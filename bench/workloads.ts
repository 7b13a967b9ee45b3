import type { CallName } from "./protocol/calls.js";
import type { ServerName } from "./processes/server-process.js";

/** The five workloads of issue 6 and the later ones, in report order (`queue` has no cases: run.ts runs queue/comparison.ts). */
export const workloadTitles = {
  overhead: "1. Protocol overhead (no database)",
  "point-read": "2. Point read: GetUser by id",
  write: "3. Write: CreateUser with a unique request_id",
  list: "4. List: ListUsers, page of 50, 90% deep into 100,000 rows",
  concurrency: "5. Concurrency: 1,000 HTTP/2 streams / 1,000 idle connections",
  operations: "6. Operations: RunWorkflow starts while remote workers claim and complete the tasks (Anvil only)",
  credentials: "7. Credentials: the gRPC point read with a service-account token (get-grpc), an API key and an OIDC token (Anvil only)",
  observability:
    "8. Observability: the point read with tracing exporting OTLP (to an in-bench sink) and /metrics scraped every second, every call sampled (anvil-observed, OTEL_TRACES_SAMPLER=parentbased_always_on) and 10% of traces sampled (anvil-observed-10pct, parentbased_traceidratio 0.1), against both off (anvil)",
  governance:
    "9. Governance: the point read and the write with the audit log and rate limits off (anvil-ungoverned), audit on (anvil), audit on + a limited key with buckets in memory (anvil-limited) and in Redis (anvil-limited-redis)",
  queue: "10. Task queue: Anvil's remote workers beside graphile-worker in process (drain, idle worker, mixed, fan-out)",
} as const;

/** A workload's key. */
export type WorkloadName = keyof typeof workloadTitles;

/** Which generator drives a case, and in what shape. */
export type LoadShape =
  /** h2load at the moderate in-flight count (fixed bodies, HTTP/2). */
  | "h2load"
  /** autocannon over HTTP/1.1 at the moderate in-flight count. */
  | "autocannon"
  /** The bench's own HTTP/2 loop: fresh body per request. */
  | "h2-loop"
  /** h2load holding 1,000 streams in flight on one connection. */
  | "h2load-1000-streams"
  /** 1,000 idle HTTP/2 connections, each used before and after holding. */
  | "idle-connections"
  /** Starts at the moderate in-flight count while worker loops claim and complete the tasks. */
  | "operations-loop";

/** One measured cell: a call, driven one way, against one server. */
export interface BenchCase {
  readonly workload: WorkloadName;
  readonly call: CallName;
  readonly shape: LoadShape;
  readonly server: ServerName;
  /**
   * The server may not serve this call yet (Anvil's gRPC health service and
   * REST transcoding land separately): when every pre-run sample answers
   * 404/UNIMPLEMENTED the case is reported as "not served" instead of failed.
   */
  readonly optional?: boolean;
}

const anvil = "anvil" as const;
// Anvil without its fast unary path, where that path applies (RPCs, not /healthz or REST).
const universal = "anvil-universal" as const;

function cases(workload: WorkloadName, call: CallName, shape: LoadShape, servers: readonly ServerName[], optional: readonly ServerName[] = []): BenchCase[] {
  return servers.map((server) => ({ workload, call, shape, server, ...(optional.includes(server) ? { optional: true } : {}) }));
}

/**
 * Every case of a run. To add a workload or a protocol (REST when it lands,
 * a health RPC, a new resource), add a call in protocol/calls.ts and a line
 * here; peers that cannot serve it are simply left out of its line.
 */
export const benchCases: readonly BenchCase[] = [
  ...cases("overhead", "health-grpc", "h2load", [anvil, universal, "bare-connect", "grpc-js", "raw-http2"], [anvil, universal]),
  ...cases("overhead", "healthz-h2", "h2load", [anvil, "raw-http2"]),
  ...cases("overhead", "healthz-h1", "autocannon", [anvil, "fastify", "raw-http"]),

  ...cases("point-read", "get-grpc", "h2load", [anvil, universal, "bare-connect", "grpc-js", "raw-http2"]),
  ...cases("point-read", "get-connect-proto", "h2load", [anvil, universal, "bare-connect"]),
  ...cases("point-read", "get-grpc-web", "autocannon", [anvil, universal, "bare-connect"]),
  ...cases("point-read", "get-connect-json", "autocannon", [anvil, universal, "bare-connect", "fastify", "raw-http"]),
  ...cases("point-read", "get-rest", "autocannon", [anvil, "fastify"], [anvil]),

  ...cases("write", "create-grpc", "h2-loop", [anvil, universal, "bare-connect", "grpc-js"]),
  ...cases("write", "create-connect-json", "autocannon", [anvil, "bare-connect", "fastify"]),

  ...cases("list", "list-grpc", "h2load", [anvil, "bare-connect", "grpc-js"]),
  ...cases("list", "list-connect-json", "autocannon", [anvil, "bare-connect", "fastify"]),

  ...cases("concurrency", "get-grpc", "h2load-1000-streams", [anvil, "bare-connect", "grpc-js"]),
  ...cases("concurrency", "get-grpc", "idle-connections", [anvil, "bare-connect", "grpc-js"]),

  // No peer has durable operations to compare with: these figures track Anvil against itself from run to run.
  ...cases("operations", "run-workflow-grpc", "operations-loop", [anvil]),

  // One call per credential kind, back to back in one run: verifying an API key or an OIDC token must cost no more than an HS256 token.
  ...cases("credentials", "get-grpc", "h2load", [anvil]),
  ...cases("credentials", "get-grpc-apikey", "h2load", [anvil]),
  ...cases("credentials", "get-grpc-oidc", "h2load", [anvil]),

  // The same server three times, side by side: what traces (two spans a sampled call, server and statement) and scrapes cost,
  // with every call sampled and with one trace in ten.
  ...cases("observability", "get-grpc", "h2load", [anvil, "anvil-observed", "anvil-observed-10pct"]),
  ...cases("observability", "get-connect-json", "autocannon", [anvil, "anvil-observed", "anvil-observed-10pct"]),

  // Four configurations side by side: what the audit log (a change event in every write's transaction) and a
  // bucket per call (a Map, or a Lua script round trip to Redis) cost.
  ...cases("governance", "get-grpc", "h2load", ["anvil-ungoverned", anvil, "anvil-limited", "anvil-limited-redis"]),
  ...cases("governance", "create-grpc", "h2-loop", ["anvil-ungoverned", anvil, "anvil-limited", "anvil-limited-redis"]),
];
