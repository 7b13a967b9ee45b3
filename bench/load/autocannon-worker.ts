import { createRequire } from "node:module";
import { buildCall, type CallName } from "../protocol/calls.js";
import type { BenchContext } from "../protocol/context.js";
import { type LoadResult, quantile } from "./load-result.js";

/** The part of autocannon's API used here (it ships no types). */
interface AutocannonRun extends PromiseLike<{ duration: number; errors: number; timeouts: number }> {
  on(event: "response", listener: (client: unknown, status: number, bytes: number, responseTime: number) => void): void;
}
const autocannon = createRequire(import.meta.url)("autocannon") as (options: object) => AutocannonRun;

/** Input of this worker (argv[2], JSON). */
export interface AutocannonInput {
  readonly baseUrl: string;
  readonly call: CallName;
  readonly ctx: BenchContext;
  readonly seconds: number;
  readonly connections: number;
}

/**
 * One autocannon run over HTTP/1.1 keep-alive, in its own pinned process.
 * `setupRequest` gives every request a fresh body when the call needs one
 * (CreateUser with a unique request_id); `onResponse` checks every answer's
 * status and content, and the latencies are the run's own.
 */
async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2]!) as AutocannonInput;
  const call = buildCall(input.call, input.ctx);
  let checked = 0;
  let wrong = 0;
  let firstWrong: string | undefined;
  const latencies: number[] = [];
  const fixedBody = call.unique ? undefined : call.body();
  const instance = autocannon({
    url: input.baseUrl,
    connections: input.connections,
    duration: input.seconds,
    // No request should take this long; a stuck one counts as a timeout error.
    timeout: 10,
    requests: [
      {
        method: call.method,
        path: call.path,
        headers: { ...call.headers },
        ...(fixedBody === undefined ? {} : { body: fixedBody }),
        ...(call.unique ? { setupRequest: (req: any) => ({ ...req, body: call.body() }) } : {}),
        onResponse: (status: number, body: string) => {
          checked++;
          const problem = call.verifyText(status, body);
          if (problem !== undefined) {
            wrong++;
            firstWrong ??= problem;
          }
        },
      },
    ],
  });
  instance.on("response", (_client: unknown, _status: number, _bytes: number, responseTime: number) => latencies.push(responseTime));
  const r = await instance;
  latencies.sort((a, b) => a - b);
  const notes = firstWrong ? [`first wrong answer: ${firstWrong}`] : [];
  if (r.errors) notes.push(`${r.errors} connection errors, ${r.timeouts} timeouts`);
  const result: LoadResult = {
    requests: latencies.length,
    seconds: r.duration,
    rps: latencies.length / r.duration,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    // Non-2xx answers also fail verifyText, so they are counted once, in `wrong`.
    errors: wrong + r.errors + r.timeouts,
    checkedInRun: checked,
    notes,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
