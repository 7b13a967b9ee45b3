import http2 from "node:http2";
import { buildCall, type CallName, type Reply } from "../protocol/calls.js";
import type { BenchContext } from "../protocol/context.js";
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
  const callOn = (session: http2.ClientHttp2Session) =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const body = call.body();
      const stream = session.request({ ":method": call.method, ":path": call.path, ...call.headers }, { endStream: body === undefined });
      let reply: Omit<Reply, "body"> = { status: 0, headers: {}, trailers: {} };
      const chunks: Buffer[] = [];
      stream.setTimeout(30_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      stream.on("response", (h) => (reply = { ...reply, status: Number(h[":status"]), headers: h }));
      stream.on("trailers", (t) => (reply = { ...reply, trailers: t }));
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", (e) => fail(String(e)));
      stream.on("close", () => {
        if (reply.status === 0) fail(`no response (rst ${stream.rstCode})`);
        else {
          const problem = call.verify({ ...reply, body: Buffer.concat(chunks) });
          if (problem) fail(problem);
          else latencies.push(performance.now() - t0);
        }
        resolve();
      });
      if (body !== undefined) stream.end(body);
    });
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
