import { type Attributes, SpanKind, SpanStatusCode, trace, TraceFlags } from "@opentelemetry/api";
import { builtStatement } from "../db/statement-name.js";
import { tracer, tracingEnabled } from "./tracing.js";

const database = { "db.system.name": "postgresql" } as const;

/**
 * Whether work starting now may record a span: tracing is on, and the span
 * it would be a child of, if any, is sampled — recorded here, or a remote
 * parent whose `traceparent` says sampled. Below a call the sampler left out
 * no child is even started (a parent-based sampler, the default, would leave
 * it out too), so an unsampled call costs no more than its own
 * non-recording span.
 */
function recordable(): boolean {
  if (!tracingEnabled()) return false;
  const parent = trace.getActiveSpan();
  return parent === undefined || parent.isRecording() || (parent.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0;
}

/**
 * Runs `work` inside an active span named `name` (when tracing is on and the
 * span would record): the spans started below it — SQL statements, calls
 * out — become its children. A failure sets the span's status to ERROR with
 * the error's class name only: messages may carry values.
 */
export async function inSpan<T>(name: string, attributes: Attributes, work: () => Promise<T>, kind: SpanKind = SpanKind.INTERNAL): Promise<T> {
  if (!recordable()) return work();
  return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await work();
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.constructor.name : typeof err });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** A unit of work's transaction as a span, parent of its statements' spans. */
export function transactionSpan<T>(work: () => Promise<T>): Promise<T> {
  return inSpan("transaction", database, work);
}

// A statement span's attributes by statement name: a bounded set, made once each.
const statementAttributes = new Map<string, Attributes>();

function attributesOf(name: string): Attributes {
  let attributes = statementAttributes.get(name);
  if (attributes === undefined) {
    const built = builtStatement(name);
    // SQL text has no single operation or table to name: its summary is the name its repository gave it.
    attributes = {
      ...database,
      "db.query.summary": name,
      ...(built !== undefined && { "db.operation.name": built.operation.toUpperCase(), "db.collection.name": built.table }),
    };
    statementAttributes.set(name, attributes);
  }
  return attributes;
}

/**
 * Records one SQL statement that has just ended as a client span of the
 * active span, named as the statement metrics name it (statementName:
 * `select users`, `tasks.finishAllAmong`) — never its text or parameter
 * values. A StatementObserver (src/db/database.ts).
 */
export function statementSpan(name: string, seconds: number, failed: boolean): void {
  // Only as a child: a statement outside any span — an after-commit notification
  // round, serving every transaction that announced meanwhile — would otherwise
  // be a trace of its own, hundreds a second on a busy queue.
  if (trace.getActiveSpan() === undefined || !recordable()) return;
  // On the performance clock, as the SDK times spans (a number below
  // performance.now() is read as such).
  const end = performance.now();
  // Attributes set after the start: given to startSpan the SDK copies and checks them twice.
  const span = tracer.startSpan(name, { kind: SpanKind.CLIENT, startTime: end - seconds * 1000 }).setAttributes(attributesOf(name));
  if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end(end);
}
