/** How big a queue comparison is: from the environment, smaller in a quick run. */
export interface QueueSizes {
  /** Jobs queued, then drained (BENCH_QUEUE_JOBS). */
  readonly jobs: number;
  /** Jobs at once: graphile-worker's concurrency, Anvil's worker count (BENCH_QUEUE_CONCURRENCY). */
  readonly concurrency: number;
  /** Jobs added to an idle worker, one at a time. */
  readonly latencySamples: number;
  /** Mixed: seconds of starts while workers drain (BENCH_QUEUE_MIXED_SECONDS). */
  readonly mixedSeconds: number;
  /** Mixed: loops starting one job or run at a time. */
  readonly starters: number;
  /** Fan-outs timed (the median is reported). */
  readonly fanOutSamples: number;
  /** A draining StreamTasks worker's max_in_flight: the most tasks one message, and so one batch of completions, holds (BENCH_QUEUE_IN_FLIGHT). */
  readonly streamInFlight: number;
}

/** The sizes of this run. */
export function queueSizes(quick: boolean): QueueSizes {
  return {
    jobs: Number(process.env.BENCH_QUEUE_JOBS ?? (quick ? 300 : 2000)),
    concurrency: Number(process.env.BENCH_QUEUE_CONCURRENCY ?? 8),
    latencySamples: quick ? 10 : 30,
    mixedSeconds: Number(process.env.BENCH_QUEUE_MIXED_SECONDS ?? (quick ? 3 : 10)),
    starters: 16,
    fanOutSamples: quick ? 2 : 5,
    streamInFlight: Number(process.env.BENCH_QUEUE_IN_FLIGHT ?? 10),
  };
}
