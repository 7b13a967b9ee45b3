import http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Operation_State, OperationService, WorkerService } from "../../gen/anvil/operations/v1/operations_pb.js";
import { RunWorkflowResponseSchema } from "../../gen/anvil/workflows/v1/workflows_pb.js";
import { buildCall } from "../protocol/calls.js";
import type { BenchContext } from "../protocol/context.js";
import { frames } from "../protocol/framing.js";
import { checkedH2Request } from "./h2-request.js";
import { type LoadResult, quantile } from "./load-result.js";

/** Input of this worker (argv[2], JSON). */
export interface OperationsLoopInput {
  readonly baseUrl: string;
  readonly ctx: BenchContext;
  readonly seconds: number;
  /** Starts kept in flight. */
  readonly inFlight: number;
  /** Worker loops claiming and completing tasks at once. */
  readonly workers: number;
}

/**
 * The operations workload: `inFlight` loops start runs of the bench
 * workflow over gRPC (RunWorkflow with a unique request_id: one operation
 * and one task, enqueued in the start's transaction), while `workers` loops
 * of a remote worker claim tasks of kind `bench` over Connect's gRPC
 * transport (ClaimTask: SKIP LOCKED, lease, events, NOTIFY) and complete
 * them at once. Requests/s and latency are those of the starts; the notes
 * give tasks finished per second and the time from a start's answer to its
 * task's completion. After the window the workers drain the queue, and
 * every operation started must then read back SUCCEEDED: a lost or doubled
 * task counts as an error.
 */
async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2]!) as OperationsLoopInput;
  const call = buildCall("run-workflow-grpc", input.ctx);
  const auth = { authorization: `Bearer ${input.ctx.token}` };
  const transport = createGrpcTransport({
    baseUrl: input.baseUrl,
    interceptors: [(next) => (req) => (req.header.set("authorization", auth.authorization), next(req))],
  });
  const workerApi = createClient(WorkerService, transport);
  const operationsApi = createClient(OperationService, transport);

  const started = new Map<string, number>(); // operation id → when its start was answered
  const finishedAfter: number[] = [];
  const startLatencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let completions = 0;
  const claimMs: number[] = [];
  let emptyClaims = 0;
  const completeMs: number[] = [];
  const fail = (why: string) => {
    errors++;
    firstError ??= why;
  };

  // Workers run until the starts are over and the queue is drained.
  let starting = true;
  const workerLoop = async (n: number) => {
    for (;;) {
      const c0 = performance.now();
      const { task } = await workerApi.claimTask({ kinds: ["bench"], workerId: `bench-${n}`, maxWait: { seconds: 1n } }, { timeoutMs: 30_000 });
      if (task) claimMs.push(performance.now() - c0);
      if (!task) {
        emptyClaims++;
        if (!starting) return;
        continue;
      }
      const answered = started.get(task.operationId);
      const d0 = performance.now();
      await workerApi.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: {} } }, { timeoutMs: 30_000 });
      completeMs.push(performance.now() - d0);
      completions++;
      if (answered !== undefined) finishedAfter.push(performance.now() - answered);
    }
  };
  const workers = Array.from({ length: input.workers }, (_, n) => workerLoop(n).catch((err: unknown) => fail(`worker: ${String(err)}`)));

  const session = http2.connect(input.baseUrl);
  session.on("error", () => {});
  const t0 = performance.now();
  const deadline = t0 + input.seconds * 1000;
  const startLoop = async () => {
    while (performance.now() < deadline) {
      const { reply, problem, ms } = await checkedH2Request(session, call);
      if (problem !== undefined || !reply) {
        fail(problem ?? "no reply");
        continue;
      }
      startLatencies.push(ms);
      const operation = fromBinary(RunWorkflowResponseSchema, frames(reply.body)[0]!.data).operation!;
      started.set(operation.id, performance.now());
    }
  };
  await Promise.all(Array.from({ length: input.inFlight }, startLoop));
  const seconds = (performance.now() - t0) / 1000;
  const completedInWindow = completions;
  session.close();
  starting = false;
  const drainStart = performance.now();
  await Promise.all(workers);
  const drainSeconds = (performance.now() - drainStart) / 1000;

  // Every operation started in the window must have succeeded, exactly once.
  const ids = [...started.keys()];
  let unfinished = 0;
  for (let i = 0; i < ids.length; i += 50) {
    const states = await Promise.all(ids.slice(i, i + 50).map((id) => operationsApi.getOperation({ id }, { timeoutMs: 30_000 }).then((r) => r.operation!.state)));
    unfinished += states.filter((s) => s !== Operation_State.SUCCEEDED).length;
  }
  if (unfinished > 0) fail(`${unfinished} of ${ids.length} operations did not succeed`);
  // Samples started by the checks before the run are completed too, so there may be a few more completions than starts.
  if (completions < ids.length) fail(`${completions} completions for ${ids.length} operations`);

  for (const list of [startLatencies, finishedAfter, claimMs, completeMs]) list.sort((a, b) => a - b);
  const result: LoadResult = {
    requests: startLatencies.length + errors,
    seconds,
    rps: startLatencies.length / seconds,
    p50Ms: quantile(startLatencies, 0.5),
    p99Ms: quantile(startLatencies, 0.99),
    errors,
    checkedInRun: startLatencies.length + ids.length,
    notes: [
      `${input.workers} worker loops completed ${completedInWindow} tasks while starts ran (${(completedInWindow / seconds).toFixed(0)}/s) ` +
        `and the ${completions - completedInWindow} left queued in ${drainSeconds.toFixed(1)} s after; ` +
        `ClaimTask p50 ${quantile(claimMs, 0.5).toFixed(1)} ms (${emptyClaims} came back empty after waiting), CompleteTask p50 ${quantile(completeMs, 0.5).toFixed(1)} ms; ` +
        `start answered → task completed p50 ${quantile(finishedAfter, 0.5).toFixed(0)} ms, p99 ${quantile(finishedAfter, 0.99).toFixed(0)} ms`,
      ...(firstError ? [`first error: ${firstError}`] : []),
    ],
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
