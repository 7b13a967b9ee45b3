import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Logger, makeWorkerUtils, run, runMigrations } from "graphile-worker";
import { WorkerService } from "../gen/anvil/operations/v1/operations_pb.js";
import { WorkflowService } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { quantile } from "./load/load-result.js";
import { pinningAvailable } from "./processes/pinning.js";
import { startServer } from "./processes/server-process.js";
import { loadSettings } from "./settings.js";
import { prepare } from "./setup.js";

/**
 * `npm run bench:queue`: Anvil's task queue beside graphile-worker (the
 * PostgreSQL job queue Node teams pick), in one run, on one PostgreSQL
 * database. Drain: N no-op jobs queued, then drained with C at once —
 * graphile-worker in process (how it is run), Anvil by C remote worker
 * loops over gRPC, one task per claim and in batches (max_tasks, the
 * completions sent concurrently). Latency: an idle worker, one job added, time until
 * it starts (Anvil: from RunWorkflow's answer to ClaimTask's). Anvil's
 * server runs in its own process, pinned like the main bench's.
 * BENCH_QUEUE_JOBS (default 2000), BENCH_QUEUE_CONCURRENCY (8).
 */
const jobs = Number(process.env.BENCH_QUEUE_JOBS ?? 2000);
const concurrency = Number(process.env.BENCH_QUEUE_CONCURRENCY ?? 8);
const latencySamples = 30;

interface Row {
  readonly name: string;
  readonly drainPerSecond: number;
  readonly startLatencyMs?: number;
}

async function main(): Promise<void> {
  const started = Date.now();
  const log = (line: string) => process.stderr.write(`[queue ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
  const settings = { ...loadSettings(), seedRows: 100 };
  const setup = await prepare(settings, log);
  const databaseUrl = setup.serverEnv.DATABASE_URL!;
  const server = await startServer("anvil", { env: setup.serverEnv });
  const rows: Row[] = [];
  try {
    log(`graphile-worker: ${jobs} jobs, concurrency ${concurrency}`);
    rows.push(await graphileWorker(databaseUrl));
    const transport = createGrpcTransport({
      baseUrl: server.baseUrl,
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${setup.ctx.token}`), next(req))],
    });
    const anvil = { workers: createClient(WorkerService, transport), workflows: createClient(WorkflowService, transport), workflowId: setup.ctx.workflowId };
    log(`anvil: ${jobs} runs, ${concurrency} worker loops, one task per call`);
    rows.push({ name: "Anvil, one task per claim and completion", drainPerSecond: await anvilDrain(anvil, 1), startLatencyMs: await anvilLatency(anvil) });
    log(`anvil: ${jobs} runs, ${concurrency} worker loops, batches of 10`);
    rows.push({ name: "Anvil, max_tasks 10, concurrent CompleteTask", drainPerSecond: await anvilDrain(anvil, 10) });
  } finally {
    await server.stop();
    await setup.teardown();
  }
  const peer = rows[0]!;
  const lines = [
    `# Task queue: Anvil beside graphile-worker`,
    ``,
    `${new Date(started).toISOString()}; ${jobs} no-op jobs, ${concurrency} at once, one PostgreSQL database; pinning ${pinningAvailable() ? "on" : "off"}.`,
    ``,
    `| queue | drain (jobs/s) | × graphile-worker | idle worker: job added → started, p50 (ms) |`,
    `|---|---:|---:|---:|`,
    ...rows.map((r) => `| ${r.name} | ${r.drainPerSecond.toFixed(0)} | ${(r.drainPerSecond / peer.drainPerSecond).toFixed(2)} | ${r.startLatencyMs?.toFixed(1) ?? "—"} |`),
    ``,
  ];
  const dir = join(import.meta.dirname, "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "queue.md"), lines.join("\n"));
  process.stdout.write(lines.join("\n"));
}

/** graphile-worker in process: addJobs in batches, then run() until every job succeeded; then one job at a time into an idle worker. */
async function graphileWorker(connectionString: string): Promise<Row> {
  await runMigrations({ connectionString });
  const utils = await makeWorkerUtils({ connectionString });
  const startedAt = new Map<string, number>();
  let done = 0;
  let allDone: (() => void) | undefined;
  const taskList = {
    noop: async (payload: unknown) => {
      const id = (payload as { id?: string }).id;
      if (id) startedAt.set(id, performance.now());
    },
  };
  try {
    for (let i = 0; i < jobs; i += 500) {
      await utils.addJobs(Array.from({ length: Math.min(500, jobs - i) }, () => ({ identifier: "noop", payload: {} })));
    }
    const finished = new Promise<void>((resolve) => (allDone = resolve));
    const t0 = performance.now();
    const runner = await run({ connectionString, concurrency, taskList, noHandleSignals: true, pollInterval: 2000, logger: quietLogger() });
    runner.events.on("job:success", () => {
      if (++done === jobs) allDone?.();
    });
    await finished;
    const drainPerSecond = jobs / ((performance.now() - t0) / 1000);
    const latencies: number[] = [];
    for (let i = 0; i < latencySamples; i++) {
      await sleep(50);
      const id = randomUUID();
      const a0 = performance.now();
      await utils.addJob("noop", { id });
      while (!startedAt.has(id)) await sleep(0.2);
      latencies.push(startedAt.get(id)! - a0);
    }
    await runner.stop();
    latencies.sort((a, b) => a - b);
    return { name: "graphile-worker 0.18 (in process)", drainPerSecond, startLatencyMs: quantile(latencies, 0.5) };
  } finally {
    await utils.release();
  }
}

interface AnvilClients {
  readonly workers: Client<typeof WorkerService>;
  readonly workflows: Client<typeof WorkflowService>;
  readonly workflowId: string;
}

/** Queues `jobs` one-step runs, then drains them with `concurrency` loops claiming `batch` at a time; tasks/s from the first claim to the last completion. */
async function anvilDrain(c: AnvilClients, batch: number): Promise<number> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next++ < jobs) await c.workflows.runWorkflow({ id: c.workflowId, requestId: randomUUID() });
    }),
  );
  let completed = 0;
  let first: number | undefined;
  const loop = async (n: number) => {
    while (completed < jobs) {
      const { tasks } = await c.workers.claimTask({ kinds: ["bench"], workerId: `queue-${n}`, maxTasks: batch, maxWait: { seconds: 1n } });
      if (tasks.length === 0) continue;
      first ??= performance.now();
      const done = tasks.map((t) => ({ taskId: t.id, leaseToken: t.leaseToken, outcome: { case: "result" as const, value: {} } }));
      // Completions go one call each, concurrently, on the loop's HTTP/2 connection.
      await Promise.all(done.map((d) => c.workers.completeTask(d)));
      completed += tasks.length;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, n) => loop(n)));
  return jobs / ((performance.now() - first!) / 1000);
}

/** An idle worker waiting in ClaimTask; a run started; ms from RunWorkflow's answer to the claim's. */
async function anvilLatency(c: AnvilClients): Promise<number> {
  const latencies: number[] = [];
  for (let i = 0; i < latencySamples; i++) {
    const claim = c.workers.claimTask({ kinds: ["bench"], workerId: "queue-idle", maxWait: { seconds: 10n } }).then((r) => ({ r, at: performance.now() }));
    await sleep(50);
    await c.workflows.runWorkflow({ id: c.workflowId, requestId: randomUUID() });
    const answered = performance.now();
    const { r, at } = await claim;
    const task = r.tasks[0];
    if (!task) throw new Error("the idle worker got no task");
    latencies.push(Math.max(0, at - answered));
    await c.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: {} } });
  }
  latencies.sort((a, b) => a - b);
  return quantile(latencies, 0.5);
}

function quietLogger() {
  // graphile-worker's Logger takes a factory of log functions; keep warnings and errors only.
  return new Logger(() => (level, message) => {
    if (level === "error" || level === "warning") process.stderr.write(`graphile-worker ${level}: ${message}\n`);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

main().catch((err: unknown) => {
  process.stderr.write(`bench:queue failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
