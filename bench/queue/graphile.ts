import { randomUUID } from "node:crypto";
import { Logger, makeWorkerUtils, run, runMigrations } from "graphile-worker";
import { quantile } from "../load/load-result.js";
import { MixedClock, type MixedResult } from "./mixed.js";
import type { QueueSizes } from "./sizes.js";

/** graphile-worker's figures: drain, idle start latency, mixed. */
export interface GraphileResult {
  readonly drainPerSecond: number;
  readonly startLatencyMs: number;
  readonly mixed: MixedResult;
}

/**
 * graphile-worker 0.18 in process, as its users run it: `jobs` no-op jobs
 * added in batches, then run() with `concurrency` until every one
 * succeeded; then one job at a time into the idle runner (added → started);
 * then Mixed: `starters` loops adding one job at a time for `mixedSeconds`
 * while the runner drains (added → succeeded).
 */
export async function graphileWorker(connectionString: string, sizes: QueueSizes): Promise<GraphileResult> {
  await runMigrations({ connectionString });
  const utils = await makeWorkerUtils({ connectionString });
  const startedAt = new Map<string, number>();
  const clock = new MixedClock();
  let done = 0;
  let allDone: (() => void) | undefined;
  const taskList = {
    noop: async (payload: unknown) => {
      const id = (payload as { id?: string }).id;
      if (id) startedAt.set(id, performance.now());
    },
  };
  try {
    for (let i = 0; i < sizes.jobs; i += 500) {
      await utils.addJobs(Array.from({ length: Math.min(500, sizes.jobs - i) }, () => ({ identifier: "noop", payload: {} })));
    }
    const finished = new Promise<void>((resolve) => (allDone = resolve));
    const t0 = performance.now();
    const runner = await run({ connectionString, concurrency: sizes.concurrency, taskList, noHandleSignals: true, pollInterval: 2000, logger: quietLogger() });
    runner.events.on("job:success", ({ job }) => {
      if (++done === sizes.jobs) allDone?.();
      const id = (job.payload as { mixed?: string }).mixed;
      if (id) clock.completed(id);
    });
    await finished;
    const drainPerSecond = sizes.jobs / ((performance.now() - t0) / 1000);
    const latencies: number[] = [];
    for (let i = 0; i < sizes.latencySamples; i++) {
      await sleep(50);
      const id = randomUUID();
      const a0 = performance.now();
      await utils.addJob("noop", { id });
      while (!startedAt.has(id)) await sleep(0.2);
      latencies.push(startedAt.get(id)! - a0);
    }
    const end = clock.open(sizes.mixedSeconds);
    await Promise.all(
      Array.from({ length: sizes.starters }, async () => {
        while (performance.now() < end) {
          const id = randomUUID();
          await utils.addJob("noop", { mixed: id });
          clock.started(id);
        }
      }),
    );
    await clock.drained();
    await runner.stop();
    latencies.sort((a, b) => a - b);
    return { drainPerSecond, startLatencyMs: quantile(latencies, 0.5), mixed: clock.result() };
  } finally {
    await utils.release();
  }
}

function quietLogger() {
  // graphile-worker's Logger takes a factory of log functions; keep warnings and errors only.
  return new Logger(() => (level, message) => {
    if (level === "error" || level === "warning") process.stderr.write(`graphile-worker ${level}: ${message}\n`);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
