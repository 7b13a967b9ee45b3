import { join } from "node:path";
import { pinningAvailable } from "./processes/pinning.js";
import { type ServerName, type ServerProcess, startServer } from "./processes/server-process.js";
import { type QueueReport, runQueueComparison } from "./queue/comparison.js";
import { queueSizes } from "./queue/sizes.js";
import { checkTargets, machine, queueTargets, toMarkdown, withRatios, writeReport } from "./report.js";
import { type CaseResult, runCase } from "./run-case.js";
import { loadSettings } from "./settings.js";
import { prepare } from "./setup.js";
import { benchCases } from "./workloads.js";
import { startObservabilitySink } from "./processes/observability-sink.js";

/**
 * `npm run bench`: prepares the data, starts every server in its own
 * process pinned to core 0, and runs each case (call × server) with the load
 * generator pinned to core 1; writes
 * bench/results/latest.md and latest.json. BENCH_QUICK=1 for a smoke run;
 * BENCH_ONLY=anvil,grpc-js to start only some servers, BENCH_CALLS=get-rest
 * to run only some calls, BENCH_WORKLOADS=credentials only some workloads
 * (a partial run writes partial.md/json instead), BENCH_ROUNDS=3 to run the
 * list three times over and keep each case's median. The queue workload
 * (BENCH_WORKLOADS=queue) runs last: Anvil's task queue beside
 * graphile-worker, as `npm run bench:queue` does.
 */
async function main(): Promise<void> {
  const started = Date.now();
  const settings = loadSettings();
  const log = (line: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
  if (!pinningAvailable()) log("taskset or a second core is missing: server and load will share cores");
  const setup = await prepare(settings, log);
  const results: CaseResult[] = [];
  let interrupted = false;
  process.once("SIGINT", () => (interrupted = true));
  const running = new Map<ServerName, ServerProcess>();
  // The collector end for the anvil-observed variants, when a case uses them.
  const sink = await startObservabilitySink();
  let queue: QueueReport | undefined;
  try {
    // BENCH_ONLY=anvil,fastify picks servers; BENCH_CALLS=get-rest,get-grpc picks calls.
    const only = process.env.BENCH_ONLY?.split(",");
    const calls = process.env.BENCH_CALLS?.split(",");
    const workloads = process.env.BENCH_WORKLOADS?.split(",");
    const cases = benchCases.filter(
      (c) => (!only || only.includes(c.server)) && (!calls || calls.includes(c.call)) && (!workloads || workloads.includes(c.workload)),
    );
    // Every server is up for the whole run (idle ones cost no CPU), and each
    // call is measured on all its servers back to back: the load other users
    // of a shared machine put on it drifts over minutes, and measuring peers
    // side by side keeps that drift out of the ratios.
    // The queue workload has no cases (no call of its own): it needs Anvil and no call filter.
    const queueRuns = (!workloads || workloads.includes("queue")) && (!only || only.includes("anvil")) && !calls;
    for (const name of new Set([...cases.map((c) => c.server), ...(queueRuns ? (["anvil"] as const) : [])])) {
      log(`starting ${name}`);
      const env =
        observedServer(name)
          ? { ...setup.serverEnv, OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint }
          : name === "anvil-limited" || name === "anvil-limited-redis"
            ? { ...setup.serverEnv, ...setup.limitedEnv }
            : setup.serverEnv;
      running.set(name, await startServer(name, { env }));
    }
    // BENCH_ROUNDS=3 runs the whole list three times over, interleaved, and keeps each case's median round:
    // on a loaded machine one slow moment then moves one round, not the ratio.
    const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1));
    const byCase = new Map<(typeof cases)[number], CaseResult[]>();
    for (let round = 1; round <= rounds && !interrupted; round++) {
      for (const c of cases) {
        if (interrupted) break;
        // An observed server is scraped while its own case runs: scrapes of an idle server would take its core from the case measured beside it.
        const server = running.get(c.server)!;
        const stopScraping = observedServer(c.server) ? sink.scrape(server.baseUrl, 1_000) : () => {};
        const r = await runCase(c, server, setup.ctx, settings).finally(stopScraping);
        byCase.set(c, [...(byCase.get(c) ?? []), r]);
        log(
          `${rounds > 1 ? `round ${round}: ` : ""}${c.workload} ${c.call} (${c.shape}) on ${c.server}: ` +
            (r.status === "not-served"
              ? "not served"
              : `${r.load?.rps.toFixed(0) ?? "—"} req/s, p99 ${r.load?.p99Ms.toFixed(1) ?? "—"} ms, ${r.errors} errors, ${r.peakRssMiB?.toFixed(0) ?? "—"} MiB` +
                (r.serverCpuUsPerCall ? `, ${r.serverCpuUsPerCall.toFixed(0)} µs CPU/call` : "") +
                (r.status === "failed" ? ` — ${r.notes.join("; ").slice(0, 300)}` : "")),
        );
      }
    }
    for (const runs of byCase.values()) results.push(medianRound(runs));
    if (queueRuns && !interrupted) {
      queue = await runQueueComparison(setup.serverEnv.DATABASE_URL!, setup.ctx, [{ label: "Anvil", server: running.get("anvil")! }], queueSizes(settings.quick), (line) =>
        log(`queue: ${line}`),
      );
    }
  } finally {
    await Promise.all([...running.values()].map((s) => s.stop()));
    const sent = sink.counts();
    if ([...running.keys()].some(observedServer)) log(`the observed servers sent ${sent.exports} OTLP exports (${(sent.exportBytes / 1e6).toFixed(1)} MB); ${sent.scrapes} scrapes, ${sent.scrapeFailures} failed`);
    await sink.close();
    await setup.teardown();
  }
  const ratios = withRatios(results);
  const report = {
    startedAt: new Date(started).toISOString(),
    durationSeconds: (Date.now() - started) / 1000,
    machine: machine(pinningAvailable()),
    settings,
    results: ratios,
    targets: [...checkTargets(ratios), ...queueTargets(queue)],
    queue,
  };
  // A partial run (BENCH_ONLY, BENCH_CALLS) must not replace the full table the README quotes.
  const partial = process.env.BENCH_ONLY !== undefined || process.env.BENCH_CALLS !== undefined || process.env.BENCH_WORKLOADS !== undefined;
  const files = writeReport(join(import.meta.dirname, "results"), report, partial ? "partial" : "latest");
  process.stdout.write(toMarkdown(report));
  log(`wrote ${files.markdown} and ${files.json}`);
}

/** The servers that export traces to the sink and are scraped. */
function observedServer(name: ServerName): boolean {
  return name.includes("observed");
}

/** The round with the median requests/s (its latency and CPU figures with it), noting every round's figure when there were several. */
function medianRound(runs: readonly CaseResult[]): CaseResult {
  if (runs.length === 1) return runs[0]!;
  const sorted = [...runs].sort((a, b) => (a.load?.rps ?? 0) - (b.load?.rps ?? 0));
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  const all = runs.map((r) => `${r.load?.rps.toFixed(0) ?? "—"} req/s${r.serverCpuUsPerCall ? ` (${r.serverCpuUsPerCall.toFixed(0)} µs CPU/call)` : ""}`);
  return {
    ...median,
    errors: runs.reduce((n, r) => n + r.errors, 0),
    status: runs.some((r) => r.status === "failed") ? "failed" : median.status,
    notes: [...median.notes, `median of ${runs.length} rounds: ${all.join(", ")}`],
  };
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
