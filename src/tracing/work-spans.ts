import { type Attributes, SpanKind, SpanStatusCode, trace, TraceFlags } from "@opentelemetry/api";
import type { CompiledQuery } from "kysely";
import { statementName } from "../metrics/db-metrics.js";
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
    const space = name.indexOf(" ");
    attributes = {
      ...database,
      "db.query.summary": name,
      "db.operation.name": (space === -1 ? name : name.slice(0, space)).toUpperCase(),
      ...(space !== -1 && { "db.collection.name": name.slice(space + 1) }),
    };
    statementAttributes.set(name, attributes);
  }
  return attributes;
}

/**
 * Records one SQL statement that has just ended as a client span of the
 * active span, named as the statement metrics name it (`select users`: its
 * kind and first table) — never its text or parameter values. A
 * StatementObserver (src/db/database.ts).
 */
export function statementSpan(query: CompiledQuery, seconds: number, failed: boolean): void {
  if (!recordable()) return;
  // On the performance clock, as the SDK times spans (a number below
  // performance.now() is read as such).
  const end = performance.now();
  const name = statementName(query.query);
  // Attributes set after the start: given to startSpan the SDK copies and checks them twice.
  const span = tracer.startSpan(name, { kind: SpanKind.CLIENT, startTime: end - seconds * 1000 }).setAttributes(attributesOf(name));
  if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end(end);
}
