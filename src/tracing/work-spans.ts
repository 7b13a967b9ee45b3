import { type Attributes, type Context, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace, TraceFlags } from "@opentelemetry/api";
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryId, QueryResult, RootOperationNode, UnknownRow } from "kysely";
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
function recordable(parent: Span | undefined): boolean {
  if (!tracingEnabled()) return false;
  return parent === undefined || parent.isRecording() || (parent.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0;
}

/** Ends `span` once `work` settles; a failure sets its status to ERROR with the error's class name only: messages may carry values. */
async function endedWith<T>(span: Span, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.constructor.name : typeof err });
    throw err;
  } finally {
    span.end();
  }
}

/**
 * Runs `work` inside an active span named `name` (when tracing is on and the
 * span would record): the spans started below it — calls out — become its
 * children. For processes that carry their context through
 * AsyncLocalStorage (the reference worker: startTracing's `asyncContext`).
 */
export async function inSpan<T>(name: string, attributes: Attributes, work: () => Promise<T>, kind: SpanKind = SpanKind.INTERNAL): Promise<T> {
  if (!recordable(trace.getActiveSpan())) return work();
  return tracer.startActiveSpan(name, { kind, attributes }, (span) => endedWith(span, work()));
}

/**
 * A unit of work's transaction as a span: a child of `parent` (the call's
 * context, a Scope's `trace`), or a trace of its own for work outside any
 * call. `work` gets the transaction's context, to record its statements
 * under (statementParent), or undefined when nothing below records: tracing
 * is off, or the sampler left the call out.
 */
export function transactionSpan<T>(parent: Context | undefined, work: (inner: Context | undefined) => Promise<T>): Promise<T> {
  if (!recordable(parent === undefined ? undefined : trace.getSpan(parent))) return work(undefined);
  const outer = parent ?? ROOT_CONTEXT;
  const span = tracer.startSpan("transaction", { kind: SpanKind.INTERNAL, attributes: database }, outer);
  return endedWith(span, work(trace.setSpan(outer, span)));
}

/** Whether the statements of work under `parent` (a Scope's `trace`) are recorded: see statementParent. */
export function recordsStatements(parent: Context | undefined): parent is Context {
  if (parent === undefined || !tracingEnabled()) return false;
  return trace.getSpan(parent)?.isRecording() === true;
}

// The context each statement run through a StatementParent plugin is recorded under, by its query id
// (kysely makes one per execution, and gives the same object to plugins and to the statement log).
const statementParents = new WeakMap<QueryId, Context>();

/**
 * A kysely plugin that files every statement run through it under
 * `parent`, so that statementSpan, called from the database's statement
 * log, records it as a child of `parent`'s span. Attached by the unit of
 * work only to calls whose spans record (recordsStatements): the
 * statements of every other call cost nothing here.
 */
export class StatementParent implements KyselyPlugin {
  readonly #parent: Context;

  constructor(parent: Context) {
    this.#parent = parent;
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    statementParents.set(args.queryId, this.#parent);
    return args.node;
  }

  transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return Promise.resolve(args.result);
  }
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
 * context its StatementParent filed it under, named as the statement
 * metrics name it (statementName: `select users`, `tasks.finishAllAmong`) —
 * never its text or parameter values. A StatementObserver
 * (src/db/database.ts).
 */
export function statementSpan(name: string, seconds: number, failed: boolean, queryId: QueryId): void {
  // Only as a child: a statement outside any unit of work — an after-commit
  // notification round, serving every transaction that announced meanwhile —
  // would otherwise be a trace of its own, hundreds a second on a busy queue.
  const parent = statementParents.get(queryId);
  if (parent === undefined) return;
  // On the performance clock, as the SDK times spans (a number below
  // performance.now() is read as such).
  const end = performance.now();
  // Attributes set after the start: given to startSpan the SDK copies and checks them twice.
  const span = tracer.startSpan(name, { kind: SpanKind.CLIENT, startTime: end - seconds * 1000 }, parent).setAttributes(attributesOf(name));
  if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end(end);
}
