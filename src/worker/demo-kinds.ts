import { LogLine_Level } from "../../gen/anvil/operations/v1/operations_pb.js";
import { Code as RpcCode } from "../../gen/google/rpc/code_pb.js";
import { type TaskContext, TaskFailedError, type TaskHandler } from "./task-runner.js";

function num(ctx: TaskContext, name: string, fallback: number): number {
  const v = ctx.task.input?.[name];
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : fallback;
}

/** Waits `ms`, ending early (with the abort reason) when the task is cancelled or its lease lost. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * `demo`: takes `seconds` (default 3) in `steps` (default 5) stages,
 * reporting progress, a stage and a log line after each — enough to watch
 * a workflow run move.
 */
export const demo: TaskHandler = async (ctx) => {
  const total = num(ctx, "seconds", 3) * 1000;
  const steps = Math.max(1, Math.round(num(ctx, "steps", 5)));
  const started = Date.now();
  for (let i = 1; i <= steps; i++) {
    await pause(total / steps, ctx.signal);
    await ctx.report({
      progress: i / steps,
      stage: `part ${i} of ${steps}`,
      logs: [{ level: LogLine_Level.INFO, message: `finished part ${i} of ${steps}` }],
    });
  }
  const took = Date.now() - started;
  // A small report, attached to the operation as `<step>-report.md` (`report.md` for a single task): what the quick start downloads.
  const report = [`# ${ctx.task.step || ctx.task.kind} report`, "", `- parts: ${steps}`, `- took: ${took} ms`, `- attempt: ${ctx.task.attempt}`, ""].join("\n");
  await ctx.attach(ctx.task.step ? `${ctx.task.step}-report.md` : "report.md", "text/markdown; charset=utf-8", new TextEncoder().encode(report));
  return { ok: true, step: ctx.task.step, took_ms: took };
};

/**
 * `demo-fail`: works for `seconds` (default 1), then fails — retryable
 * unless the input says `retryable: false`; `succeed_on_attempt` (when
 * set) succeeds from that attempt on, to show a retry that works.
 */
export const demoFail: TaskHandler = async (ctx) => {
  await pause(num(ctx, "seconds", 1) * 1000, ctx.signal);
  const succeedOn = num(ctx, "succeed_on_attempt", 0);
  if (succeedOn > 0 && ctx.task.attempt >= succeedOn) return { ok: true, attempt: ctx.task.attempt };
  const retryable = ctx.task.input?.retryable !== false;
  const message = typeof ctx.task.input?.message === "string" ? ctx.task.input.message : "failed on request";
  await ctx.report({ logs: [{ level: LogLine_Level.ERROR, message }] });
  throw new TaskFailedError(message, retryable ? RpcCode.UNAVAILABLE : RpcCode.FAILED_PRECONDITION, retryable);
};

/** The kinds the reference worker knows, by name. */
export const demoKinds: Readonly<Record<string, TaskHandler>> = { demo, "demo-fail": demoFail };
