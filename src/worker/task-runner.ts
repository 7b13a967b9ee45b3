import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import {
  type CompleteTaskRequestSchema,
  type LogLine_Level,
  Operation_State,
  type ReportProgressRequestSchema,
  type Task,
  type UploadArtifactRequestSchema,
  type WorkerService,
} from "../../gen/anvil/operations/v1/operations_pb.js";
import { Code as RpcCode } from "../../gen/google/rpc/code_pb.js";
import type { JsonObject } from "../shared/json.js";
import { context, SpanKind } from "@opentelemetry/api";
import { contextFromTraceParent } from "../tracing/tracing.js";
import { inSpan } from "../tracing/work-spans.js";
import { CompletionBatcher } from "./completion-batcher.js";

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
  /**
   * Attaches a file to the task's operation (WorkerService.UploadArtifact,
   * streamed in pieces as `content` yields them); one of the same name is
   * replaced. Throws when the lease is lost.
   */
  attach(name: string, contentType: string, content: Uint8Array | AsyncIterable<Uint8Array>): Promise<void>;
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
  /** Stops claiming when aborted (a task in hand is still finished, within graceMs). */
  readonly signal: AbortSignal;
  /**
   * How long a task in hand may still run once `signal` aborts (default: no
   * limit). Past it the handler is aborted and the task left uncompleted:
   * its lease expires and another worker retries it, rather than a result
   * half-way being reported as the task's outcome.
   */
  readonly graceMs?: number;
  readonly log: (line: string) => void;
}

const seconds = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The worker loop: a StreamTasks call receives tasks of known kinds the
 * moment they are queued, as many as the worker has room for (the gateway
 * counts the worker's leases against `concurrency`); each handler runs
 * while a heartbeat keeps its lease alive; completions are reported
 * batched while one is on its way (CompletionBatcher). Against a gateway
 * without StreamTasks it claims with ClaimTask (`max_tasks`, long-polling)
 * instead. A lease lost (FAILED_PRECONDITION) abandons the task — another
 * worker has it; a cancellation aborts the handler and completes the task
 * as CANCELLED.
 */
export async function runWorker(options: WorkerOptions): Promise<void> {
  const completions = new CompletionBatcher(options.client);
  const running = new Set<Promise<void>>();
  const start = (task: Task) => {
    const run: Promise<void> = runTask(options, task, completions).finally(() => running.delete(run));
    running.add(run);
  };
  const kinds = Object.keys(options.handlers);
  const leaseDuration = seconds(options.leaseMs);
  let streaming = true;
  let backoff = 250;
  while (!options.signal.aborted) {
    try {
      if (streaming) {
        const request = { kinds, workerId: options.workerId, leaseDuration, maxInFlight: options.concurrency };
        const opened = Date.now();
        // Reconnects every streamMs, so a renewed token is used and a drained gateway instance let go.
        for await (const message of options.client.streamTasks(request, { signal: options.signal, timeoutMs: streamMs })) {
          backoff = 250;
          for (const task of message.tasks) start(task);
        }
        // Ended by the gateway (it is shutting down): reconnect, but never in a tight loop.
        if (Date.now() - opened < 1_000) await sleep(250);
        continue;
      }
      // Claims only what it has room for, so no claimed task waits for the worker.
      if (running.size >= options.concurrency) {
        await Promise.race(running);
        continue;
      }
      const request = { kinds, workerId: options.workerId, maxWait: seconds(20_000), leaseDuration, maxTasks: options.concurrency - running.size };
      for (const task of (await options.client.claimTask(request, { signal: options.signal })).tasks) start(task);
      backoff = 250;
    } catch (err) {
      if (options.signal.aborted) break;
      const failure = ConnectError.from(err);
      // The stream's own deadline: the next one starts at once.
      if (streaming && failure.code === Code.DeadlineExceeded) continue;
      if (streaming && failure.code === Code.Unimplemented) {
        streaming = false;
        continue;
      }
      options.log(`claim failed (${failure.message}); retrying in ${backoff} ms`);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 10_000);
    }
  }
  await Promise.all(running);
}

/** How long one StreamTasks call lasts before the worker opens the next. */
const streamMs = 60_000;

/**
 * Handles one claimed task inside the trace of the call that started its
 * operation (the task's `trace_parent`): a `process <kind>` span, with the
 * handler's run (`execute <kind>`) and the ReportProgress and CompleteTask
 * calls below it — those calls send the trace on to the gateway.
 */
function runTask(options: WorkerOptions, task: Task, completions: CompletionBatcher): Promise<void> {
  const attributes = { "anvil.task.id": task.id, "anvil.task.kind": task.kind, "anvil.operation.id": task.operationId, "anvil.task.attempt": task.attempt };
  return context.with(contextFromTraceParent(task.traceParent), () =>
    inSpan(`process ${task.kind}`, attributes, () => handleTask(options, task, completions), SpanKind.CONSUMER),
  );
}

async function handleTask(options: WorkerOptions, task: Task, completions: CompletionBatcher): Promise<void> {
  const lease = { taskId: task.id, leaseToken: task.leaseToken };
  const stop = new AbortController();
  let lost = false;
  const send = async (what: string, update: MessageInitShape<typeof ReportProgressRequestSchema>) => {
    try {
      const answer = await options.client.reportProgress({ ...update, ...lease });
      if (answer.cancelRequested) stop.abort(new TaskFailedError("cancelled on request", RpcCode.CANCELLED, false));
    } catch (err) {
      const failure = ConnectError.from(err);
      if (failure.code !== Code.FailedPrecondition) {
        // Said out loud: a lease that cannot be extended is about to be lost.
        options.log(`${what} of ${task.id} failed (code ${Code[failure.code]}): ${failure.rawMessage}`);
        throw err;
      }
      lost = true;
      stop.abort(new Error("lease lost"));
    }
  };
  // Extends the lease while the handler is busy between its own reports;
  // a failure is logged by send, and the next beat tries again.
  const heartbeat = setInterval(() => void send("heartbeat", {}).catch(() => undefined), Math.max(250, options.leaseMs / 3));
  const grace = pastGrace(options);
  options.log(`claimed ${task.kind} ${task.id} (step ${task.step || "-"}${task.compensation ? ", compensation" : ""}, attempt ${task.attempt}/${task.maxAttempts})`);
  let outcome: NonNullable<MessageInitShape<typeof CompleteTaskRequestSchema>["outcome"]> | "abandoned";
  try {
    const handler = options.handlers[task.kind]!;
    const attach = async (name: string, contentType: string, content: Uint8Array | AsyncIterable<Uint8Array>) => {
      await options.client.uploadArtifact(uploadMessages({ ...lease, name, contentType }, content), { signal: stop.signal });
    };
    const run = () => handler({ task, signal: stop.signal, report: (u) => send("progress report", { ...u, logs: u.logs ? [...u.logs] : [] }), attach });
    const work = inSpan(`execute ${task.kind}`, { "anvil.task.id": task.id }, run).then(
      (result): typeof outcome => ({ case: "result", value: result }),
      (err: unknown): typeof outcome => {
        const failure = stop.signal.aborted && stop.signal.reason instanceof TaskFailedError ? stop.signal.reason : err;
        return failure instanceof TaskFailedError
          ? { case: "error", value: { code: failure.code, message: failure.message, retryable: failure.retryable } }
          : { case: "error", value: { code: RpcCode.UNKNOWN, message: failure instanceof Error ? failure.message : String(failure), retryable: true } };
      },
    );
    outcome = await Promise.race([work, grace.expired]);
  } finally {
    clearInterval(heartbeat);
    grace.dispose();
  }
  if (outcome === "abandoned") {
    stop.abort(new Error("the worker is stopping"));
    options.log(`stopping: ${task.id} left unfinished after the grace period; its lease will expire and another worker retry it`);
    return;
  }
  if (lost) {
    options.log(`lost the lease of ${task.id}; another worker has it`);
    return;
  }
  try {
    const done = await completions.complete({ ...lease, outcome });
    if ("refused" in done) {
      options.log(`could not complete ${task.id}: ${done.refused}`);
      return;
    }
    options.log(`completed ${task.id}: ${outcome.case}; operation ${done.operationId} is ${(Operation_State[done.state] ?? "unknown").toLowerCase()}`);
  } catch (err) {
    options.log(`could not complete ${task.id}: ${ConnectError.from(err).message}`);
  }
}

/** Resolves "abandoned" once graceMs has passed since the worker was told to stop (never without graceMs). */
function pastGrace(options: WorkerOptions): { readonly expired: Promise<"abandoned">; dispose(): void } {
  let timer: NodeJS.Timeout | undefined;
  let onStop = () => {};
  const expired = new Promise<"abandoned">((resolve) => {
    if (options.graceMs === undefined) return;
    onStop = () => {
      timer = setTimeout(() => resolve("abandoned"), options.graceMs);
    };
    if (options.signal.aborted) onStop();
    else options.signal.addEventListener("abort", onStop, { once: true });
  });
  return {
    expired,
    dispose: () => {
      clearTimeout(timer);
      options.signal.removeEventListener("abort", onStop);
    },
  };
}

/** An upload's messages: the header, then the content in pieces of at most 1 MiB. */
async function* uploadMessages(
  header: { taskId: string; leaseToken: string; name: string; contentType: string },
  content: Uint8Array | AsyncIterable<Uint8Array>,
): AsyncGenerator<MessageInitShape<typeof UploadArtifactRequestSchema>> {
  const whole = content instanceof Uint8Array ? content : undefined;
  yield { item: { case: "header", value: { ...header, ...(whole && { sizeBytes: BigInt(whole.byteLength) }) } } };
  const pieces = whole ? [whole] : content;
  for await (const piece of pieces as AsyncIterable<Uint8Array>) {
    for (let at = 0; at < piece.byteLength; at += 1 << 20) yield { item: { case: "chunk", value: piece.subarray(at, at + (1 << 20)) } };
  }
}
