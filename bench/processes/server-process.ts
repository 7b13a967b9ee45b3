import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import { PeakRss } from "./peak-rss.js";
import { pinned, serverCore } from "./pinning.js";

/**
 * The servers the bench can start, by their script in bench/servers/.
 * `anvil-universal` is Anvil with its fast unary path switched off
 * (ANVIL_FAST_UNARY=off): every call through connect-node's universal
 * handler, so the two paths show side by side. `anvil-observed` is Anvil
 * exporting traces over OTLP (the runner gives it OTEL_EXPORTER_OTLP_ENDPOINT,
 * an in-bench sink) while its /metrics is scraped every second, every call
 * sampled (`parentbased_always_on`, the SDK's default); `anvil-observed-10pct`
 * is the same with 10% of new traces sampled (`parentbased_traceidratio`,
 * 0.1), a production setting.
 * `anvil-ungoverned` is Anvil with its audit log off (ANVIL_AUDIT=off) and, like
 * `anvil`, a key of the unlimited tier; `anvil-limited` and
 * `anvil-limited-redis` are Anvil with a limited key (the runner gives them
 * the bench's limited keys file), buckets in memory or in Redis.
 */
export type ServerName =
  | "anvil"
  | "anvil-universal"
  | "anvil-observed"
  | "anvil-observed-10pct"
  | "anvil-ungoverned"
  | "anvil-limited"
  | "anvil-limited-redis"
  | "bare-connect" | "grpc-js" | "fastify" | "raw-http" | "raw-http2";

const variants: Partial<Record<ServerName, { script: ServerName; env: NodeJS.ProcessEnv }>> = {
  "anvil-universal": { script: "anvil", env: { ANVIL_FAST_UNARY: "off" } },
  "anvil-observed": { script: "anvil", env: { OTEL_SERVICE_NAME: "anvil-bench", OTEL_TRACES_SAMPLER: "parentbased_always_on" } },
  "anvil-observed-10pct": {
    script: "anvil",
    env: { OTEL_SERVICE_NAME: "anvil-bench", OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.1" },
  },
  "anvil-ungoverned": { script: "anvil", env: { ANVIL_AUDIT: "off" } },
  "anvil-limited": { script: "anvil", env: {} },
  "anvil-limited-redis": {
    script: "anvil",
    env: { ANVIL_REDIS_URL: process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379", ANVIL_REDIS_PREFIX: `anvil-bench-${process.pid}:` },
  },
};

/** Options of startServer. */
export interface ServerOptions {
  readonly env: NodeJS.ProcessEnv;
  /** Extra node flags, e.g. --cpu-prof. */
  readonly nodeArgs?: readonly string[];
  /** The checkout to serve from (default: this one), e.g. another worktree to measure before and after a change. */
  readonly cwd?: string;
}

/** A bench server running in its own pinned child process. */
export interface ServerProcess {
  readonly name: ServerName;
  readonly pid: number;
  readonly baseUrl: string;
  readonly rss: PeakRss;
  /** SIGTERM, then wait for a normal exit (which writes a CPU profile when asked for). */
  stop(): Promise<void>;
}

/**
 * Starts `bench/servers/<name>.ts` under tsx, pinned to the server core, on
 * a free loopback port, and resolves once it prints READY. Its stderr is
 * kept so a server that dies says why.
 */
export async function startServer(name: ServerName, options: ServerOptions): Promise<ServerProcess> {
  const port = await freePort();
  const variant = variants[name];
  const [command, args] = pinned(serverCore, process.execPath, [
    ...(options.nodeArgs ?? []),
    "--import",
    "tsx",
    `bench/servers/${variant?.script ?? name}.ts`,
    String(port),
  ]);
  const child = spawn(command, args, { env: { ...options.env, ...variant?.env }, stdio: ["ignore", "pipe", "pipe"], ...(options.cwd && { cwd: options.cwd }) });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4000);
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not print READY within 60 s\n${stderr}`)), 60_000);
    let out = "";
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      if (/^READY /m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before READY\n${stderr}`));
    });
  });
  // Keep draining stdout so a chatty server never blocks on a full pipe.
  child.stdout!.resume();
  return {
    name,
    pid: child.pid!,
    baseUrl: `http://127.0.0.1:${port}`,
    rss: new PeakRss(child.pid!),
    stop: () => stop(child),
  };
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
