import { runAutocannon } from "./load/autocannon.js";
import { runH2Loop } from "./load/h2-loop.js";
import { runH2load } from "./load/h2load.js";
import { runIdleConnections } from "./load/idle-connections.js";
import { runOperationsLoop } from "./load/operations-loop.js";
import type { LoadResult } from "./load/load-result.js";
import { buildCall } from "./protocol/calls.js";
import { type SampleCheck, sampleCheck } from "./protocol/client.js";
import type { BenchContext } from "./protocol/context.js";
import { processCpuSeconds } from "./processes/process-cpu.js";
import type { ServerProcess } from "./processes/server-process.js";
import type { BenchSettings } from "./settings.js";
import type { BenchCase } from "./workloads.js";

/** The measured outcome of one case. */
export interface CaseResult extends BenchCase {
  readonly protocol: string;
  readonly status: "ok" | "not-served" | "failed";
  readonly load?: LoadResult;
  /** All errors: during the run plus wrong answers in the sample checks around it. */
  readonly errors: number;
  /** Answers checked for status and content (samples plus in-run checks). */
  readonly checked: number;
  readonly peakRssMiB?: number;
  /** The server's CPU time (user + system) in the measured run per call answered, in microseconds. */
  readonly serverCpuUsPerCall?: number;
  readonly notes: readonly string[];
}

/**
 * Runs one case against a started server: sample check (is the answer
 * right at all?), warm-up with the same load, the measured run while the
 * server's peak RSS is tracked, and a second sample check (is it still
 * right after load?).
 */
export async function runCase(c: BenchCase, server: ServerProcess, ctx: BenchContext, s: BenchSettings): Promise<CaseResult> {
  const call = buildCall(c.call, ctx);
  const base = { ...c, protocol: call.protocol };
  const before = await sampleCheck(server.baseUrl, call, s.sampleSize);
  if (before.failed === before.checked && c.optional && notServed(before)) {
    return { ...base, status: "not-served", errors: 0, checked: before.checked, notes: [`not served yet: ${before.firstFailure}`] };
  }
  const drive = (seconds: number): Promise<LoadResult> => {
    switch (c.shape) {
      case "h2load":
        return runH2load({ baseUrl: server.baseUrl, call, seconds, connections: s.h2Connections, streams: s.inFlight / s.h2Connections, ...bytes(before) });
      case "h2load-1000-streams":
        return runH2load({ baseUrl: server.baseUrl, call, seconds, requests: s.streams * (s.quick ? 1 : 3), connections: 1, streams: s.streams, ...bytes(before) });
      case "autocannon":
        return runAutocannon(server.baseUrl, c.call, ctx, seconds, s.inFlight);
      case "h2-loop":
        return runH2Loop(server.baseUrl, c.call, ctx, seconds, s.h2Connections, s.inFlight / s.h2Connections);
      case "idle-connections":
        return runIdleConnections(server.baseUrl, c.call, ctx, s.idleConnections, s.idleHoldSeconds);
      case "operations-loop":
        return runOperationsLoop(server.baseUrl, ctx, seconds, s.inFlight - s.operationWorkers, s.operationWorkers);
    }
  };
  const notes: string[] = [];
  if (before.firstFailure) notes.push(`before the run: ${before.failed}/${before.checked} wrong, e.g. ${before.firstFailure}`);
  try {
    // The concurrency shapes follow the moderate cases on the same warm server; they are about memory and failures.
    if (c.shape !== "idle-connections" && c.shape !== "h2load-1000-streams") await drive(s.warmupSeconds);
    server.rss.start();
    const cpuBefore = processCpuSeconds(server.pid);
    let load: LoadResult;
    let peakKiB = 0;
    try {
      load = await drive(s.measureSeconds);
    } finally {
      peakKiB = server.rss.stop();
    }
    const cpuAfter = processCpuSeconds(server.pid);
    const cpuUs = cpuBefore !== undefined && cpuAfter !== undefined && load.requests > 0 ? ((cpuAfter - cpuBefore) * 1e6) / load.requests : undefined;
    const after = await sampleCheck(server.baseUrl, call, s.sampleSize);
    if (after.firstFailure) notes.push(`after the run: ${after.failed}/${after.checked} wrong, e.g. ${after.firstFailure}`);
    const errors = load.errors + before.failed + after.failed;
    return {
      ...base,
      status: errors === 0 ? "ok" : "failed",
      load,
      errors,
      checked: before.checked + after.checked + load.checkedInRun,
      peakRssMiB: peakKiB / 1024,
      ...(cpuUs !== undefined && { serverCpuUsPerCall: cpuUs }),
      notes: [...notes, ...load.notes],
    };
  } catch (err) {
    return { ...base, status: "failed", errors: before.failed || 1, checked: before.checked, notes: [...notes, String(err).slice(0, 500)] };
  }
}

function bytes(check: SampleCheck): { expectedBodyBytes?: number } {
  return check.bodyBytes === undefined ? {} : { expectedBodyBytes: check.bodyBytes };
}

/** A 404, or gRPC/Connect UNIMPLEMENTED (12): the route does not exist, as opposed to answering wrongly. */
function notServed(check: SampleCheck): boolean {
  return /HTTP 404|grpc-status 12\b|unimplemented/i.test(check.firstFailure ?? "");
}
