import type { CallName } from "../protocol/calls.js";
import type { BenchContext } from "../protocol/context.js";
import type { IdleInput } from "./idle-connections-worker.js";
import type { LoadResult } from "./load-result.js";
import { runWorker } from "./worker-process.js";

/** Holds `connections` idle HTTP/2 connections open against a server and checks each still works (see the worker). */
export function runIdleConnections(baseUrl: string, call: CallName, ctx: BenchContext, connections: number, holdSeconds: number): Promise<LoadResult> {
  const input: IdleInput = { baseUrl, call, ctx, connections, holdSeconds };
  return runWorker<LoadResult>("idle-connections-worker.ts", input, (holdSeconds + 120) * 1000);
}
