/** What one measured run of any load generator reports. */
export interface LoadResult {
  /** Responses completed in the measured window. */
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Failed, reset, timed-out, non-2xx or wrong-content answers seen during the run. */
  readonly errors: number;
  /** How many answers the generator itself checked for content during the run (0 when it cannot, e.g. h2load). */
  readonly checkedInRun: number;
  /** Anything a reader of the table should know (first wrong answer, tool limits). */
  readonly notes: readonly string[];
}

/** The q-quantile (0..1) of `sorted` (ascending), nearest-rank. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}
