import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Logger, makeWorkerUtils, run, runMigrations } from "graphile-worker";
import { WorkerService } from "../gen/anvil/operations/v1/operations_pb.js";
import { Workflow_State, WorkflowService } from "../gen/anvil/workflows/v1/workflows_pb.js";
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
 * completions sent concurrently or in one BatchCompleteTasks), and C
 * StreamTasks workers. Latency: an idle worker, one job added, time until
 * it starts (Anvil: from RunWorkflow's answer to ClaimTask's, or to the
 * StreamTasks message). Fan-out: a parent step and 100 children, time
 * from the parent's completion until C streaming workers hold all 100. Anvil's
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
  let fanOutMs: number | undefined;
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
    log(`anvil: ${jobs} runs, ${concurrency} worker loops, max_tasks 10, BatchCompleteTasks`);
    rows.push({ name: "Anvil, max_tasks 10, BatchCompleteTasks", drainPerSecond: await anvilDrain(anvil, 10, true) });
    log(`anvil: ${jobs} runs, ${concurrency} StreamTasks workers (max_in_flight 10), BatchCompleteTasks`);
    rows.push({ name: "Anvil, StreamTasks + BatchCompleteTasks", drainPerSecond: await anvilStreamDrain(anvil), startLatencyMs: await anvilStreamLatency(anvil) });
    log(`anvil: 100-way fan-out claimed by ${concurrency} streaming workers`);
    fanOutMs = await anvilFanOut(anvil);
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
    `100-way fan-out: parent's CompleteTask answered → all 100 children received by ${concurrency} streaming workers, p50 of ${fanOutSamples}: ${fanOutMs?.toFixed(1) ?? "—"} ms.`,
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

/** Queues `jobs` one-step runs of the bench workflow, 16 calls at a time. */
async function queueRuns(c: AnvilClients): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next++ < jobs) {
        const requestId = randomUUID(); // the same on a retry: started once
        await retrying(() => c.workflows.runWorkflow({ id: c.workflowId, requestId }));
      }
    }),
  );
}

/**
 * `call()`, tried again on UNAVAILABLE (the gateway could not get a
 * database connection in time: on a loaded shared machine, or with other
 * clients holding the server's connections). A completion whose first try
 * committed but whose answer was lost is refused LEASE_LOST on the next: done.
 */
async function retrying<T>(call: () => Promise<T>): Promise<T | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const code = ConnectError.from(err).code;
      if (code === Code.FailedPrecondition && attempt > 1) return undefined;
      if (code !== Code.Unavailable || attempt === 10) throw err;
      await sleep(50 * attempt);
    }
  }
}

type Leased = { readonly id: string; readonly leaseToken: string };
const done = (tasks: readonly Leased[]) => tasks.map((t) => ({ taskId: t.id, leaseToken: t.leaseToken, outcome: { case: "result" as const, value: {} } }));

/** Queues `jobs` one-step runs, then drains them with `concurrency` loops claiming `batch` at a time; tasks/s from the first claim to the last completion. */
async function anvilDrain(c: AnvilClients, batch: number, batchCompletions = false): Promise<number> {
  await queueRuns(c);
  let completed = 0;
  let first: number | undefined;
  const loop = async (n: number) => {
    while (completed < jobs) {
      const tasks = (await retrying(() => c.workers.claimTask({ kinds: ["bench"], workerId: `queue-${n}`, maxTasks: batch, maxWait: { seconds: 1n } })))?.tasks ?? [];
      if (tasks.length === 0) continue;
      first ??= performance.now();
      // Completions go in one BatchCompleteTasks, or one call each, concurrently, on the loop's HTTP/2 connection.
      if (batchCompletions) await retrying(() => c.workers.batchCompleteTasks({ requests: done(tasks) }));
      else await Promise.all(done(tasks).map((d) => retrying(() => c.workers.completeTask(d))));
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

/**
 * Queues `jobs` one-step runs, then drains them with `concurrency` workers,
 * each a StreamTasks call (max_in_flight 10) whose every message is
 * completed in one BatchCompleteTasks; tasks/s from the first task
 * received to the last completion.
 */
async function anvilStreamDrain(c: AnvilClients): Promise<number> {
  await queueRuns(c);
  let completed = 0;
  let first: number | undefined;
  const stop = new AbortController();
  const worker = async (n: number) => {
    const pending: Promise<unknown>[] = [];
    try {
      for await (const m of c.workers.streamTasks({ kinds: ["bench"], workerId: `stream-${n}`, maxInFlight: 10 }, { signal: stop.signal })) {
        if (m.tasks.length === 0) continue;
        first ??= performance.now();
        pending.push(
          retrying(() => c.workers.batchCompleteTasks({ requests: done(m.tasks) })).then(() => {
            completed += m.tasks.length;
            if (completed >= jobs) stop.abort();
          }),
        );
      }
    } catch (err) {
      if (!stop.signal.aborted) throw err;
    }
    await Promise.all(pending);
  };
  await Promise.all(Array.from({ length: concurrency }, (_, n) => worker(n)));
  return jobs / ((performance.now() - first!) / 1000);
}

/** An idle worker's StreamTasks; a run started; ms from RunWorkflow's answer to the stream's message with its task. */
async function anvilStreamLatency(c: AnvilClients): Promise<number> {
  const latencies: number[] = [];
  const stop = new AbortController();
  const received: Array<(task: Leased) => void> = [];
  const stream = (async () => {
    try {
      for await (const m of c.workers.streamTasks({ kinds: ["bench"], workerId: "stream-idle", maxInFlight: 1 }, { signal: stop.signal })) {
        for (const t of m.tasks) received.shift()?.(t);
      }
    } catch (err) {
      if (!stop.signal.aborted) throw err;
    }
  })();
  await sleep(200);
  for (let i = 0; i < latencySamples; i++) {
    const got = new Promise<{ task: Leased; at: number }>((resolve) => received.push((task) => resolve({ task, at: performance.now() })));
    await c.workflows.runWorkflow({ id: c.workflowId, requestId: randomUUID() });
    const answered = performance.now();
    const { task, at } = await got;
    latencies.push(Math.max(0, at - answered));
    await c.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: {} } });
    await sleep(50);
  }
  stop.abort();
  await stream;
  latencies.sort((a, b) => a - b);
  return quantile(latencies, 0.5);
}

const fanOutSamples = 5;

/**
 * A workflow of a parent step and 100 children that depend on it; one
 * worker completes the parent while `concurrency` workers wait on
 * StreamTasks (max_in_flight 16 each: room for all 100). Milliseconds from
 * the parent's CompleteTask answer until the workers have received all 100.
 */
async function anvilFanOut(c: AnvilClients): Promise<number> {
  const steps = [
    { name: "parent", kind: "bench-parent", config: {}, dependsOn: [] },
    ...Array.from({ length: 100 }, (_, i) => ({ name: `child-${i}`, kind: "bench-fan", config: {}, dependsOn: ["parent"] })),
  ];
  const workflow = (await c.workflows.createWorkflow({ workflow: { displayName: "fan-out", state: Workflow_State.ACTIVE, steps } })).workflow!;
  const samples: number[] = [];
  for (let i = 0; i < fanOutSamples; i++) {
    const stop = new AbortController();
    const received: Leased[] = [];
    let allAt = 0;
    let allReceived: () => void = () => {};
    const all = new Promise<void>((resolve) => (allReceived = resolve));
    const workers = Array.from({ length: concurrency }, async (_, n) => {
      try {
        for await (const m of c.workers.streamTasks({ kinds: ["bench-fan"], workerId: `fan-${n}`, maxInFlight: 16 }, { signal: stop.signal })) {
          received.push(...m.tasks);
          if (received.length === 100) {
            allAt = performance.now();
            allReceived();
          }
        }
      } catch (err) {
        if (!stop.signal.aborted) throw err;
      }
    });
    await sleep(300);
    await c.workflows.runWorkflow({ id: workflow.id, requestId: randomUUID() });
    let parent: Leased | undefined;
    while (!parent) parent = (await c.workers.claimTask({ kinds: ["bench-parent"], workerId: "fan-parent", maxWait: { seconds: 5n } })).tasks[0];
    await c.workers.completeTask({ taskId: parent.id, leaseToken: parent.leaseToken, outcome: { case: "result", value: {} } });
    const answered = performance.now();
    await all;
    samples.push(allAt - answered);
    await c.workers.batchCompleteTasks({ requests: done(received) });
    stop.abort();
    await Promise.all(workers);
  }
  samples.sort((a, b) => a - b);
  return quantile(samples, 0.5);
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
