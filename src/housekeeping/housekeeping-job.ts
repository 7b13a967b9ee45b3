/** Records rows a job handled as each batch commits, by what they were (`operations`, `idempotency_keys`, `leases_returned`…). */
export type CountRows = (what: string, rows: number) => void;

/**
 * One piece of cluster-wide upkeep the sweeper runs on every sweep, on the
 * one instance that holds the housekeeping lock. Jobs bound their own work
 * (small batches, a cap per sweep), count each batch as it commits, and
 * stop between batches once `signal` aborts (the instance is shutting
 * down). Other capabilities add theirs to the list build() hands the
 * sweeper (audit events' retention, say).
 */
export interface HousekeepingJob {
  /** Names the job in logs and metrics. */
  readonly name: string;
  /** What it counts (the `what` of its CountRows calls), for metrics present from start. */
  readonly counts: readonly string[];
  run(signal: AbortSignal, count: CountRows): Promise<void>;
}

/** What the sweeper reports (the metrics implement it). */
export interface HousekeepingEvents {
  /** Whether this instance holds the lock now, after each attempt. */
  leader(held: boolean): void;
  /** Rows a job handled (deleted, returned to the queue), counted per committed batch. */
  rows(job: string, what: string, rows: number): void;
  /** A job's sweep ended, failed part-way or not. */
  swept(job: string, failed: boolean): void;
}

/**
 * Runs `batch` until it handles fewer than `batchSize` rows, `maxBatches`
 * ran, or `signal` aborts, giving the event loop a turn between batches.
 */
export async function inBatches(batchSize: number, maxBatches: number, signal: AbortSignal, batch: () => Promise<number>): Promise<void> {
  for (let i = 0; i < maxBatches && !signal.aborted; i++) {
    if ((await batch()) < batchSize) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}
