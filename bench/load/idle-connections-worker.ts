import http2 from "node:http2";
import { buildCall, type CallName } from "../protocol/calls.js";
import type { BenchContext } from "../protocol/context.js";
import { checkedH2Request } from "./h2-request.js";
import { type LoadResult, quantile } from "./load-result.js";

/** Input of this worker (argv[2], JSON). */
export interface IdleInput {
  readonly baseUrl: string;
  readonly call: CallName;
  readonly ctx: BenchContext;
  readonly connections: number;
  readonly holdSeconds: number;
}

/**
 * Opens `connections` HTTP/2 connections, makes one checked call on each (so
 * every one is fully set up on the server), holds them all idle for
 * `holdSeconds`, then calls once more on each: a server that dropped or
 * choked on idle connections fails the second round. The runner watches the
 * server's peak RSS meanwhile.
 */
async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2]!) as IdleInput;
  const call = buildCall(input.call, input.ctx);
  let errors = 0;
  let firstError: string | undefined;
  const latencies: number[] = [];
  const started = performance.now();
  const sessions: http2.ClientHttp2Session[] = [];
  const fail = (why: string) => {
    errors++;
    firstError ??= why;
  };
  const callOn = async (session: http2.ClientHttp2Session) => {
    const { problem, ms } = await checkedH2Request(session, call, 30_000);
    if (problem !== undefined) fail(problem);
    else latencies.push(ms);
  };
  // Open in batches of 100 so the listen backlog is never what fails.
  for (let i = 0; i < input.connections; i += 100) {
    const batch = Array.from({ length: Math.min(100, input.connections - i) }, () => {
      const s = http2.connect(input.baseUrl);
      s.on("error", (e) => fail(`connection: ${String(e)}`));
      sessions.push(s);
      return callOn(s);
    });
    await Promise.all(batch);
  }
  await new Promise((r) => setTimeout(r, input.holdSeconds * 1000));
  const open = sessions.filter((s) => !s.closed && !s.destroyed).length;
  if (open < sessions.length) fail(`${sessions.length - open} connections closed while idle`);
  await Promise.all(sessions.map((s) => (s.closed || s.destroyed ? Promise.resolve() : callOn(s))));
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
    notes: [`${open} of ${input.connections} connections still open after ${input.holdSeconds} s idle`, ...(firstError ? [`first error: ${firstError}`] : [])],
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
