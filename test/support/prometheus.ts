import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const install = "install Debian's prometheus package (as root: apt-get update && apt-get install -y prometheus; .ci/run does this)";

/** The path of a binary of Debian's `prometheus` package; throws (never skips) when it is not installed. */
export function prometheusBinary(name: "prometheus" | "promtool"): string {
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim();
  } catch {
    throw new Error(`${name} is not on PATH: ${install}`);
  }
}

/** A real Prometheus server scraping one target, for the duration of a test. */
export interface Prometheus {
  readonly url: string;
  /** Evaluates an instant query at `time` (seconds; default now) and returns its vector. */
  query(expr: string, time?: number): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  stop(): Promise<void>;
}

/** Options of startPrometheus. */
export interface PrometheusOptions {
  /** host:port of the target. */
  readonly target: string;
  readonly bearerToken?: string;
  readonly scrapeIntervalSeconds?: number;
}

/**
 * Starts Prometheus on a free loopback port with a scrape configuration for
 * `target` and storage in a temporary folder, and waits until it is ready.
 */
export async function startPrometheus(options: PrometheusOptions): Promise<Prometheus> {
  const binary = prometheusBinary("prometheus");
  const dir = mkdtempSync(join(tmpdir(), "anvil-prometheus-"));
  const interval = `${options.scrapeIntervalSeconds ?? 1}s`;
  const config = [
    "global:",
    `  scrape_interval: ${interval}`,
    `  evaluation_interval: ${interval}`,
    "scrape_configs:",
    "  - job_name: anvil",
    `    scrape_interval: ${interval}`,
    `    scrape_timeout: ${interval}`,
    "    metrics_path: /metrics",
    ...(options.bearerToken ? ["    authorization:", `      credentials: ${JSON.stringify(options.bearerToken)}`] : []),
    "    static_configs:",
    `      - targets: [${JSON.stringify(options.target)}]`,
  ].join("\n");
  writeFileSync(join(dir, "prometheus.yml"), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = "";
  const child: ChildProcess = spawn(
    binary,
    [`--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited with ${child.exitCode}: ${output}`);
    }
    const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    stop,
    query: async (expr, time) => {
      const params = new URLSearchParams({ query: expr });
      if (time !== undefined) params.set("time", String(time));
      const res = await fetch(`${url}/api/v1/query?${params}`);
      const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown } };
      if (body.status !== "success") throw new Error(`query ${expr} failed: ${body.error}`);
      return body.data!.result as { metric: Record<string, string>; value: [number, string] }[];
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}
