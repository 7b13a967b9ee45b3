import { type Attributes, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { CompiledQuery } from "kysely";
import { statementName } from "../metrics/db-metrics.js";
import { tracer, tracingEnabled } from "./tracing.js";

const database = { "db.system.name": "postgresql" } as const;

/**
 * Runs `work` inside an active span named `name` (when tracing is on): the
 * spans started below it — SQL statements, calls out — become its children.
 * A failure sets the span's status to ERROR with the error's class name only:
 * messages may carry values.
 */
export async function inSpan<T>(name: string, attributes: Attributes, work: () => Promise<T>, kind: SpanKind = SpanKind.INTERNAL): Promise<T> {
  if (!tracingEnabled()) return work();
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

/**
 * Records one SQL statement that has just ended as a client span of the
 * active span, named as the statement metrics name it (`select users`: its
 * kind and first table) — never its text or parameter values. A
 * StatementObserver (src/db/database.ts).
 */
export function statementSpan(query: CompiledQuery, seconds: number, failed: boolean): void {
  if (!tracingEnabled()) return;
  // On the performance clock, as the SDK times spans (a number below
  // performance.now() is read as such).
  const end = performance.now();
  const name = statementName(query.query);
  const space = name.indexOf(" ");
  const span = tracer.startSpan(name, {
    kind: SpanKind.CLIENT,
    startTime: end - seconds * 1000,
    attributes: {
      ...database,
      "db.query.summary": name,
      "db.operation.name": (space === -1 ? name : name.slice(0, space)).toUpperCase(),
      ...(space !== -1 && { "db.collection.name": name.slice(space + 1) }),
    },
  });
  if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end(end);
}
