import http2 from "node:http2";
import { buildCall, type CallName } from "../protocol/calls.js";
import type { BenchContext } from "../protocol/context.js";
import { checkedH2Request } from "./h2-request.js";
import { type LoadResult, quantile } from "./load-result.js";

/** Input of this worker (argv[2], JSON). */
export interface H2LoopInput {
  readonly baseUrl: string;
  readonly call: CallName;
  readonly ctx: BenchContext;
  readonly seconds: number;
  readonly connections: number;
  readonly streams: number;
}

/**
 * A closed-loop HTTP/2 load generator for what h2load cannot do: a new body
 * per request (gRPC CreateUser with a unique request_id). `connections`
 * sessions each keep `streams` calls in flight; every answer is checked in
 * full (status, grpc-status trailer, decoded message). It costs more CPU per
 * request than h2load, but runs on its own core and is the same for every
 * server it is pointed at, so ratios between them hold.
 */
async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2]!) as H2LoopInput;
  const call = buildCall(input.call, input.ctx);
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const deadline = performance.now() + input.seconds * 1000;
  const started = performance.now();
  const sessions = Array.from({ length: input.connections }, () => {
    const s = http2.connect(input.baseUrl);
    s.on("error", () => {});
    return s;
  });
  const one = async (session: http2.ClientHttp2Session) => {
    const { problem, ms } = await checkedH2Request(session, call);
    if (problem === undefined) latencies.push(ms);
    else {
      errors++;
      firstError ??= problem;
    }
  };
  const loop = async (session: http2.ClientHttp2Session) => {
    while (performance.now() < deadline) await one(session);
  };
  await Promise.all(sessions.flatMap((s) => Array.from({ length: input.streams }, () => loop(s))));
  const seconds = (performance.now() - started) / 1000;
  for (const s of sessions) s.close();
  latencies.sort((a, b) => a - b);
  const result: LoadResult = {
    requests: latencies.length + errors,
    seconds,
    rps: (latencies.length + errors) / seconds,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    errors,
    checkedInRun: latencies.length + errors,
    notes: firstError ? [`first error: ${firstError}`] : [],
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
