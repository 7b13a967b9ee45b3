import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runAutocannon } from "./load/autocannon.js";
import { runH2load } from "./load/h2load.js";
import { runOperationsLoop } from "./load/operations-loop.js";
import { pinningAvailable } from "./processes/pinning.js";
import { startObservabilitySink } from "./processes/observability-sink.js";
import { type ServerName, startServer } from "./processes/server-process.js";
import { hotFunctionsMarkdown, topSelfTime } from "./profile-summary.js";
import { buildCall, type CallName } from "./protocol/calls.js";
import { sampleCheck } from "./protocol/client.js";
import { loadSettings } from "./settings.js";
import { prepare } from "./setup.js";

/**
 * `npm run bench:profile`: runs Anvil under `node --cpu-prof` (pinned, real
 * PostgreSQL, real token) while h2load drives the point read over gRPC
 * (BENCH_PROFILE_CALL picks another call, e.g. get-rest or get-connect-json,
 * which autocannon drives over HTTP/1.1; BENCH_PROFILE_SERVER=anvil-observed
 * profiles Anvil exporting traces to the in-bench sink and scraped every
 * second, as the observability case runs it), then writes the .cpuprofile into bench/results/ —
 * open it in Chrome DevTools or speedscope — and prints the ten functions
 * with the most self time, also saved as bench/results/profile-top.md.
 */
async function main(): Promise<void> {
  const settings = loadSettings();
  const log = (line: string) => process.stderr.write(`[profile] ${line}\n`);
  const callName = (process.env.BENCH_PROFILE_CALL ?? "get-grpc") as CallName;
  const serverName = (process.env.BENCH_PROFILE_SERVER ?? "anvil") as ServerName;
  const results = join(import.meta.dirname, "results");
  const dir = join(results, `profile-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  mkdirSync(dir, { recursive: true });
  const setup = await prepare(settings, log);
  const sink = await startObservabilitySink();
  try {
    const observed = serverName.startsWith("anvil-observed");
    const env = observed ? { ...setup.serverEnv, OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint } : setup.serverEnv;
    const server = await startServer(serverName, { env, nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${dir}`] });
    if (observed) sink.scrape(server.baseUrl, 1_000);
    try {
      const call = buildCall(callName, setup.ctx);
      const check = await sampleCheck(server.baseUrl, call, settings.sampleSize);
      if (check.failed) throw new Error(`Anvil answers ${callName} wrongly: ${check.firstFailure}`);
      const load = { baseUrl: server.baseUrl, call, connections: settings.h2Connections, streams: settings.inFlight / settings.h2Connections, ...(check.bodyBytes ? { expectedBodyBytes: check.bodyBytes } : {}) };
      // HTTP/1.1 calls (Connect JSON, REST, gRPC-Web) are driven by autocannon, as in the benchmark.
      // The operations workload (run-workflow-grpc) runs its starts and worker loops as in the benchmark.
      const drive = (seconds: number) =>
        callName === "run-workflow-grpc"
          ? runOperationsLoop(server.baseUrl, setup.ctx, seconds, settings.inFlight - settings.operationWorkers, settings.operationWorkers)
          : call.http === "h1"
            ? runAutocannon(server.baseUrl, callName, setup.ctx, seconds, settings.inFlight)
            : runH2load({ ...load, seconds });
      await drive(settings.warmupSeconds);
      const r = await drive(Math.max(settings.measureSeconds, settings.quick ? 2 : 20));
      log(`${callName} on ${serverName}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ${r.errors} errors${pinningAvailable() ? "" : " (unpinned)"}`);
    } finally {
      await server.stop();
    }
  } finally {
    await sink.close();
    await setup.teardown();
  }
  // --cpu-prof writes one file per thread (tsx's loader thread too): the main thread's is the biggest.
  const profiles = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  if (profiles.length === 0) throw new Error(`no .cpuprofile written to ${dir}`);
  const main = profiles.map((f) => join(dir, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  const table = `# ${serverName} CPU profile under ${callName} load\n\nProfile: ${main}\n\n${hotFunctionsMarkdown(topSelfTime(main, 10))}`;
  writeFileSync(join(results, "profile-top.md"), table);
  process.stdout.write(table);
}

main().catch((err: unknown) => {
  process.stderr.write(`profile failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
