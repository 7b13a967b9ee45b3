import type { BenchContext } from "../protocol/context.js";
import type { LoadResult } from "./load-result.js";
import type { OperationsLoopInput } from "./operations-loop-worker.js";
import { runWorker } from "./worker-process.js";

/** Drives the operations workload (see operations-loop-worker.ts) from the load core. */
export function runOperationsLoop(baseUrl: string, ctx: BenchContext, seconds: number, inFlight: number, workers: number): Promise<LoadResult> {
  const input: OperationsLoopInput = { baseUrl, ctx, seconds, inFlight, workers };
  return runWorker<LoadResult>("operations-loop-worker.ts", input, (seconds + 120) * 1000);
}
