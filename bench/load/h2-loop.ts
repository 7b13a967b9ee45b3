import type { CallName } from "../protocol/calls.js";
import type { BenchContext } from "../protocol/context.js";
import type { H2LoopInput } from "./h2-loop-worker.js";
import type { LoadResult } from "./load-result.js";
import { runWorker } from "./worker-process.js";

/** Drives an HTTP/2 call that needs a fresh body per request with the bench's own checked loop (see h2-loop-worker.ts). */
export function runH2Loop(baseUrl: string, call: CallName, ctx: BenchContext, seconds: number, connections: number, streams: number): Promise<LoadResult> {
  const input: H2LoopInput = { baseUrl, call, ctx, seconds, connections, streams };
  return runWorker<LoadResult>("h2-loop-worker.ts", input, (seconds + 60) * 1000);
}
