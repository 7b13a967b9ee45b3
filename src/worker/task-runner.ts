import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import {
  type CompleteTaskRequestSchema,
  type LogLine_Level,
  Operation_State,
  type ReportProgressRequestSchema,
  type Task,
  type WorkerService,
} from "../../gen/anvil/operations/v1/operations_pb.js";
import { Code as RpcCode } from "../../gen/google/rpc/code_pb.js";
import type { JsonObject } from "../shared/json.js";

/** What a task handler may report while it works. */
export interface TaskReport {
  readonly progress?: number;
  readonly stage?: string;
  readonly message?: string;
  readonly logs?: ReadonlyArray<{ readonly level: LogLine_Level; readonly message: string }>;
}

/** What a handler gets: its task, a way to report, and a signal that aborts when the operation is cancelled or the lease is lost. */
export interface TaskContext {
  readonly task: Task;
  readonly signal: AbortSignal;
  report(update: TaskReport): Promise<void>;
}

/** Carries out one kind of task; resolves with the result, or throws TaskFailedError. */
export type TaskHandler = (ctx: TaskContext) => Promise<JsonObject>;

/** A failure the handler chose: its code, and whether retrying may help. */
export class TaskFailedError extends Error {
  constructor(message: string, readonly code: RpcCode, readonly retryable: boolean) {
    super(message);
  }
}

/** How a worker runs. */
export interface WorkerOptions {
  readonly client: Client<typeof WorkerService>;
  readonly handlers: Readonly<Record<string, TaskHandler>>;
  readonly workerId: string;
  readonly leaseMs: number;
  /** Tasks worked on at once. */
  readonly concurrency: number;
  /** Stops claiming when aborted (a task in hand is still finished). */
  readonly signal: AbortSignal;
  readonly log: (line: string) => void;
}

const seconds = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The worker loop: claim a task of a known kind (long-polling), run its
 * handler while a heartbeat keeps the lease alive, complete it. A lease
 * lost (FAILED_PRECONDITION) abandons the task — another worker has it; a
 * cancellation aborts the handler and completes the task as CANCELLED.
 */
export async function runWorker(options: WorkerOptions): Promise<void> {
  const slots = Array.from({ length: options.concurrency }, (_, i) => slot(options, i));
  await Promise.all(slots);
}

async function slot(options: WorkerOptions, index: number): Promise<void> {
  let backoff = 250;
  while (!options.signal.aborted) {
    let task: Task | undefined;
    try {
      const request = { kinds: Object.keys(options.handlers), workerId: `${options.workerId}/${index}`, maxWait: seconds(20_000), leaseDuration: seconds(options.leaseMs) };
      task = (await options.client.claimTask(request, { signal: options.signal })).task;
      backoff = 250;
    } catch (err) {
      if (options.signal.aborted) return;
      options.log(`claim failed (${ConnectError.from(err).message}); retrying in ${backoff} ms`);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 10_000);
      continue;
    }
    if (task) await runTask(options, task);
  }
}

async function runTask(options: WorkerOptions, task: Task): Promise<void> {
  const lease = { taskId: task.id, leaseToken: task.leaseToken };
  const stop = new AbortController();
  let lost = false;
  const send = async (update: MessageInitShape<typeof ReportProgressRequestSchema>) => {
    try {
      const answer = await options.client.reportProgress({ ...update, ...lease });
      if (answer.cancelRequested) stop.abort(new TaskFailedError("cancelled on request", RpcCode.CANCELLED, false));
    } catch (err) {
      if (ConnectError.from(err).code !== Code.FailedPrecondition) throw err;
      lost = true;
      stop.abort(new Error("lease lost"));
    }
  };
  // Extends the lease while the handler is busy between its own reports.
  const heartbeat = setInterval(() => void send({}).catch(() => undefined), Math.max(250, options.leaseMs / 3));
  options.log(`claimed ${task.kind} ${task.id} (step ${task.step || "-"}, attempt ${task.attempt}/${task.maxAttempts})`);
  let outcome: MessageInitShape<typeof CompleteTaskRequestSchema>["outcome"];
  try {
    const handler = options.handlers[task.kind]!;
    const result = await handler({ task, signal: stop.signal, report: (u) => send({ ...u, logs: u.logs ? [...u.logs] : [] }) });
    outcome = { case: "result", value: result };
  } catch (err) {
    const failure = stop.signal.aborted && stop.signal.reason instanceof TaskFailedError ? stop.signal.reason : err;
    outcome =
      failure instanceof TaskFailedError
        ? { case: "error", value: { code: failure.code, message: failure.message, retryable: failure.retryable } }
        : { case: "error", value: { code: RpcCode.UNKNOWN, message: failure instanceof Error ? failure.message : String(failure), retryable: true } };
  } finally {
    clearInterval(heartbeat);
  }
  if (lost) {
    options.log(`lost the lease of ${task.id}; another worker has it`);
    return;
  }
  try {
    const done = await options.client.completeTask({ ...lease, outcome });
    const state = done.operation ? Operation_State[done.operation.state] : "unknown";
    options.log(`completed ${task.id}: ${outcome.case}; operation ${done.operation?.id} is ${state.toLowerCase()}`);
  } catch (err) {
    options.log(`could not complete ${task.id}: ${ConnectError.from(err).message}`);
  }
}
