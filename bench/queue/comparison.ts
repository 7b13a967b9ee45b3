import type { ServerProcess } from "../processes/server-process.js";
import type { BenchContext } from "../protocol/context.js";
import { anvilClients, anvilDrain, anvilFanOut, anvilLatency, anvilMixed, anvilStreamDrain, anvilStreamLatency } from "./anvil.js";
import { graphileWorker, type GraphileResult } from "./graphile.js";
import type { MixedResult } from "./mixed.js";
import type { QueueSizes } from "./sizes.js";

/** One Anvil server's figures. */
export interface AnvilQueueFigures {
  /** Which server: "Anvil", or a label such as "Anvil (before)". */
  readonly label: string;
  readonly drain: { readonly oneByOne: number; readonly batched: number; readonly batchCompleted: number; readonly streamed: number };
  readonly claimLatencyMs: number;
  readonly streamLatencyMs: number;
  readonly fanOutMs: number;
  readonly mixed: MixedResult;
}

/** The queue comparison of one run. */
export interface QueueReport {
  readonly sizes: QueueSizes;
  readonly graphile: GraphileResult;
  readonly anvil: readonly AnvilQueueFigures[];
}

/**
 * graphile-worker, then each Anvil server on each measurement in turn
 * (servers side by side per measurement: the load of a shared machine
 * drifts over minutes). Every server uses the one bench database.
 */
export async function runQueueComparison(
  databaseUrl: string,
  ctx: BenchContext,
  servers: ReadonlyArray<{ readonly label: string; readonly server: ServerProcess }>,
  sizes: QueueSizes,
  log: (line: string) => void,
): Promise<QueueReport> {
  log(`graphile-worker: ${sizes.jobs} jobs, concurrency ${sizes.concurrency}; mixed ${sizes.mixedSeconds} s`);
  const graphile = await graphileWorker(databaseUrl, sizes);
  const clients = servers.map((s) => ({ label: s.label, c: anvilClients(s.server.baseUrl, ctx.token, ctx.workflowId, sizes) }));
  const each = async <T>(what: string, measure: (c: (typeof clients)[number]["c"]) => Promise<T>): Promise<T[]> => {
    const out: T[] = [];
    for (const { label, c } of clients) {
      log(`${label}: ${what}`);
      out.push(await measure(c));
    }
    return out;
  };
  const streamed = await each(`drain, ${sizes.concurrency} StreamTasks workers (max_in_flight ${sizes.streamInFlight}) + BatchCompleteTasks`, anvilStreamDrain);
  const streamLatency = await each("idle StreamTasks worker latency", anvilStreamLatency);
  const fanOut = await each(`100-way fan-out to ${sizes.concurrency} streaming workers`, anvilFanOut);
  const mixed = await each(`mixed: ${sizes.starters} start loops for ${sizes.mixedSeconds} s while streaming workers drain`, anvilMixed);
  const oneByOne = await each(`drain, ${sizes.concurrency} ClaimTask loops, one task per call`, (c) => anvilDrain(c, 1));
  const claimLatency = await each("idle ClaimTask latency", anvilLatency);
  const batched = await each("drain, max_tasks 10, concurrent CompleteTask", (c) => anvilDrain(c, 10));
  const batchCompleted = await each("drain, max_tasks 10, BatchCompleteTasks", (c) => anvilDrain(c, 10, true));
  return {
    sizes,
    graphile,
    anvil: clients.map(({ label }, i) => ({
      label,
      drain: { oneByOne: oneByOne[i]!, batched: batched[i]!, batchCompleted: batchCompleted[i]!, streamed: streamed[i]! },
      claimLatencyMs: claimLatency[i]!,
      streamLatencyMs: streamLatency[i]!,
      fanOutMs: fanOut[i]!,
      mixed: mixed[i]!,
    })),
  };
}

/** The comparison as Markdown tables (no heading). */
export function queueMarkdown(r: QueueReport): string {
  const g = r.graphile;
  const drain = (label: string, perSecond: number, latency?: number) =>
    `| ${label} | ${perSecond.toFixed(0)} | ${(perSecond / g.drainPerSecond).toFixed(2)} | ${latency?.toFixed(1) ?? "—"} |`;
  const mixed = (label: string, m: MixedResult) =>
    `| ${label} | ${m.startsPerSecond.toFixed(0)} | ${m.tasksPerSecond.toFixed(0)} | ${m.p50Ms.toFixed(0)} | ${m.p95Ms.toFixed(0)} | ${m.p99Ms.toFixed(0)} |`;
  const lines = [
    `${r.sizes.jobs} no-op jobs, ${r.sizes.concurrency} at once, one PostgreSQL database; graphile-worker in process, Anvil's workers remote (gRPC) against its server process.`,
    "",
    "**Drain** (jobs/s, first claim to last completion) and **idle worker** (job added → started, p50 ms):",
    "",
    "| queue | drain (jobs/s) | × graphile-worker | idle worker p50 (ms) |",
    "|---|--:|--:|--:|",
    drain("graphile-worker 0.18 (in process)", g.drainPerSecond, g.startLatencyMs),
    ...r.anvil.flatMap((a) => [
      drain(`${a.label}, StreamTasks + BatchCompleteTasks`, a.drain.streamed, a.streamLatencyMs),
      drain(`${a.label}, ClaimTask max_tasks 10 + BatchCompleteTasks`, a.drain.batchCompleted),
      drain(`${a.label}, ClaimTask max_tasks 10 + concurrent CompleteTask`, a.drain.batched),
      drain(`${a.label}, one task per ClaimTask and CompleteTask`, a.drain.oneByOne, a.claimLatencyMs),
    ]),
    "",
    `**Mixed**: ${r.sizes.starters} loops start one job (graphile-worker addJob; Anvil RunWorkflow) at a time for ${r.sizes.mixedSeconds} s while the workers drain (Anvil: streaming workers); start answered → completion answered, every start of the window:`,
    "",
    "| queue | starts/s | tasks/s | p50 (ms) | p95 (ms) | p99 (ms) |",
    "|---|--:|--:|--:|--:|--:|",
    mixed("graphile-worker 0.18 (in process)", g.mixed),
    ...r.anvil.map((a) => mixed(`${a.label}, StreamTasks + BatchCompleteTasks`, a.mixed)),
    "",
    `**100-way fan-out** (parent's CompleteTask answered → all 100 children received by ${r.sizes.concurrency} streaming workers, p50 of ${r.sizes.fanOutSamples}): ` +
      r.anvil.map((a) => `${a.label} ${a.fanOutMs.toFixed(1)} ms`).join(", ") +
      ".",
  ];
  return `${lines.join("\n")}\n`;
}
