import http2 from "node:http2";
import { buildCall, type CallName } from "../protocol/calls.js";
import type { BenchContext } from "../protocol/context.js";
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
  const one = (session: http2.ClientHttp2Session) =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const body = call.body();
      const stream = session.request({ ":method": call.method, ":path": call.path, ...call.headers }, { endStream: body === undefined });
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      const fail = (why: string) => {
        errors++;
        firstError ??= why;
      };
      stream.setTimeout(10_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      stream.on("response", (h) => (headers = h));
      stream.on("trailers", (t) => (trailers = t));
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", (e) => fail(String(e)));
      stream.on("close", () => {
        const status = Number(headers[":status"] ?? 0);
        if (status === 0) fail(`no response (rst ${stream.rstCode})`);
        else {
          const problem = call.verify({ status, headers, trailers, body: Buffer.concat(chunks) });
          if (problem !== undefined) fail(problem);
          else latencies.push(performance.now() - t0);
        }
        resolve();
      });
      if (body !== undefined) stream.end(body);
    });
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
