/**
 * How long and how hard the bench pushes. One place, so a quick smoke run
 * (BENCH_QUICK=1) and the full run differ only here, and the full run's
 * budget (under 15 minutes for every case) can be checked by reading it.
 */
export interface BenchSettings {
  readonly quick: boolean;
  /** Seconds of load before measuring, so JIT, pools and caches are warm. */
  readonly warmupSeconds: number;
  /** Seconds of measured load per case. */
  readonly measureSeconds: number;
  /** Requests in flight for the throughput/latency cases: "fixed moderate concurrency". */
  readonly inFlight: number;
  /** HTTP/2 connections the in-flight requests are spread over. */
  readonly h2Connections: number;
  /** Streams held open at once in the concurrency case. */
  readonly streams: number;
  /** Idle connections held open in the concurrency case. */
  readonly idleConnections: number;
  /** Seconds the idle connections are held before they are used again. */
  readonly idleHoldSeconds: number;
  /** Rows seeded into `users` for the list workload. */
  readonly seedRows: number;
  /** Responses checked one by one (status and content) before and after every measured run. */
  readonly sampleSize: number;
  /** Worker loops claiming and completing tasks in the operations workload (the rest of inFlight start runs). */
  readonly operationWorkers: number;
  /** PostgreSQL server the bench creates its database on. */
  readonly databaseUrl: string;
}

/** Reads the settings from the environment (BENCH_QUICK, BENCH_MEASURE_SECONDS, DATABASE_URL, ...). */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): BenchSettings {
  const quick = env.BENCH_QUICK === "1" || env.BENCH_QUICK === "true";
  const num = (name: string, fallback: number) => (env[name] ? Number(env[name]) : fallback);
  return {
    quick,
    warmupSeconds: num("BENCH_WARMUP_SECONDS", quick ? 1 : 3),
    measureSeconds: num("BENCH_MEASURE_SECONDS", quick ? 2 : 8),
    inFlight: num("BENCH_IN_FLIGHT", 16),
    h2Connections: 2,
    streams: 1000,
    idleConnections: 1000,
    idleHoldSeconds: quick ? 1 : 5,
    seedRows: num("BENCH_SEED_ROWS", 100_000),
    sampleSize: quick ? 5 : 20,
    operationWorkers: 8,
    databaseUrl: env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres",
  };
}
