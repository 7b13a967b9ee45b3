import { randomUUID } from "node:crypto";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { WorkerService } from "../../gen/anvil/operations/v1/operations_pb.js";
import { Workflow_State, WorkflowService } from "../../gen/anvil/workflows/v1/workflows_pb.js";
import { quantile } from "../load/load-result.js";
import { MixedClock, type MixedResult } from "./mixed.js";
import type { QueueSizes } from "./sizes.js";

/** The clients of one Anvil server, authenticated as the bench's worker. */
export interface AnvilClients {
  readonly workers: Client<typeof WorkerService>;
  readonly workflows: Client<typeof WorkflowService>;
  readonly workflowId: string;
  readonly sizes: QueueSizes;
}

/** Clients over gRPC (Connect's transport, HTTP/2) to the Anvil server at `baseUrl`. */
export function anvilClients(baseUrl: string, token: string, workflowId: string, sizes: QueueSizes): AnvilClients {
  const transport = createGrpcTransport({
    baseUrl,
    interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
  });
  return { workers: createClient(WorkerService, transport), workflows: createClient(WorkflowService, transport), workflowId, sizes };
}

/** Queues `jobs` one-step runs of the bench workflow, 16 calls at a time. */
export async function queueRuns(c: AnvilClients): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next++ < c.sizes.jobs) {
        const requestId = randomUUID(); // the same on a retry: started once
        await retrying(() => c.workflows.runWorkflow({ id: c.workflowId, requestId }));
      }
    }),
  );
}

/**
 * `call()`, tried again on UNAVAILABLE (the gateway could not get a
 * database connection in time: on a loaded shared machine, or with other
 * clients holding the server's connections) and on ABORTED (a lost race,
 * which changed nothing). A completion whose first try
 * committed but whose answer was lost is refused LEASE_LOST on the next: done.
 */
async function retrying<T>(call: () => Promise<T>): Promise<T | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const code = ConnectError.from(err).code;
      if (code === Code.FailedPrecondition && attempt > 1) return undefined;
      if ((code !== Code.Unavailable && code !== Code.Aborted) || attempt === 10) throw err;
      await sleep(50 * attempt);
    }
  }
}

type Leased = { readonly id: string; readonly leaseToken: string; readonly operationId: string };
const done = (tasks: readonly Leased[]) => tasks.map((t) => ({ taskId: t.id, leaseToken: t.leaseToken, outcome: { case: "result" as const, value: {} } }));

/** Queues `jobs` one-step runs, then drains them with `concurrency` loops claiming `batch` at a time; tasks/s from the first claim to the last completion. */
export async function anvilDrain(c: AnvilClients, batch: number, batchCompletions = false): Promise<number> {
  await queueRuns(c);
  const { jobs, concurrency } = c.sizes;
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
export async function anvilLatency(c: AnvilClients): Promise<number> {
  const latencies: number[] = [];
  for (let i = 0; i < c.sizes.latencySamples; i++) {
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
 * `concurrency` streaming workers, each a StreamTasks call (max_in_flight
 * `streamInFlight`: 10 unless BENCH_QUEUE_IN_FLIGHT says) whose every
 * message is completed in one BatchCompleteTasks, until `stop` aborts;
 * `onCompleted` hears of each task once its completion is answered.
 */
async function streamWorkers(c: AnvilClients, stop: AbortController, onCompleted: (tasks: readonly Leased[]) => void, onFirst?: () => void): Promise<void> {
  const worker = async (n: number) => {
    const pending: Promise<unknown>[] = [];
    try {
      for await (const m of c.workers.streamTasks({ kinds: ["bench"], workerId: `stream-${n}`, maxInFlight: c.sizes.streamInFlight }, { signal: stop.signal })) {
        if (m.tasks.length === 0) continue;
        onFirst?.();
        pending.push(retrying(() => c.workers.batchCompleteTasks({ requests: done(m.tasks) })).then(() => onCompleted(m.tasks)));
      }
    } catch (err) {
      if (!stop.signal.aborted) throw err;
    }
    await Promise.all(pending);
  };
  await Promise.all(Array.from({ length: c.sizes.concurrency }, (_, n) => worker(n)));
}

/**
 * Queues `jobs` one-step runs (unless `queued`: the caller did), then
 * drains them with streaming workers; tasks/s from the first task received
 * to the last completion.
 */
export async function anvilStreamDrain(c: AnvilClients, queued = false): Promise<number> {
  if (!queued) await queueRuns(c);
  let completed = 0;
  let first: number | undefined;
  const stop = new AbortController();
  await streamWorkers(
    c,
    stop,
    (tasks) => {
      completed += tasks.length;
      if (completed >= c.sizes.jobs) stop.abort();
    },
    () => (first ??= performance.now()),
  );
  return c.sizes.jobs / ((performance.now() - first!) / 1000);
}

/**
 * Mixed: `starters` loops start one-step runs for `mixedSeconds` while the
 * streaming workers drain them; starts/s and tasks/s in the window, and
 * each start's answer → its task's completion answered, until all are done.
 */
export async function anvilMixed(c: AnvilClients): Promise<MixedResult> {
  const clock = new MixedClock();
  const stop = new AbortController();
  const workers = streamWorkers(c, stop, (tasks) => {
    for (const t of tasks) clock.completed(t.operationId);
  });
  await sleep(200);
  const end = clock.open(c.sizes.mixedSeconds);
  await Promise.all(
    Array.from({ length: c.sizes.starters }, async () => {
      while (performance.now() < end) {
        const started = await retrying(() => c.workflows.runWorkflow({ id: c.workflowId, requestId: randomUUID() }));
        if (started?.operation) clock.started(started.operation.id);
      }
    }),
  );
  await clock.drained();
  stop.abort();
  await workers;
  return clock.result();
}

/** An idle worker's StreamTasks; a run started; ms from RunWorkflow's answer to the stream's message with its task. */
export async function anvilStreamLatency(c: AnvilClients): Promise<number> {
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
  for (let i = 0; i < c.sizes.latencySamples; i++) {
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

/**
 * A workflow of a parent step and 100 children that depend on it; one
 * worker completes the parent while `concurrency` workers wait on
 * StreamTasks (max_in_flight 16 each: room for all 100). Milliseconds from
 * the parent's CompleteTask answer until the workers have received all
 * 100, the median of fanOutSamples.
 */
export async function anvilFanOut(c: AnvilClients): Promise<number> {
  const steps = [
    { name: "parent", kind: "bench-parent", config: {}, dependsOn: [] },
    ...Array.from({ length: 100 }, (_, i) => ({ name: `child-${i}`, kind: "bench-fan", config: {}, dependsOn: ["parent"] })),
  ];
  const workflow = (await c.workflows.createWorkflow({ workflow: { displayName: "fan-out", state: Workflow_State.ACTIVE, steps } })).workflow!;
  const samples: number[] = [];
  for (let i = 0; i < c.sizes.fanOutSamples; i++) {
    const stop = new AbortController();
    const received: Leased[] = [];
    let allAt = 0;
    let allReceived: () => void = () => {};
    const all = new Promise<void>((resolve) => (allReceived = resolve));
    const workers = Array.from({ length: c.sizes.concurrency }, async (_, n) => {
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
