import type { CallName } from "../protocol/calls.js";
import type { BenchContext } from "../protocol/context.js";
import type { AutocannonInput } from "./autocannon-worker.js";
import type { LoadResult } from "./load-result.js";
import { runWorker } from "./worker-process.js";

/**
 * Drives an HTTP/1.1 call with autocannon (Connect JSON, gRPC-Web, REST,
 * /healthz), in a worker pinned to the load core; every answer is checked.
 */
export function runAutocannon(baseUrl: string, call: CallName, ctx: BenchContext, seconds: number, connections: number): Promise<LoadResult> {
  const input: AutocannonInput = { baseUrl, call, ctx, seconds, connections };
  return runWorker<LoadResult>("autocannon-worker.ts", input, (seconds + 60) * 1000);
}
