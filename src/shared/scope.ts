import type { Context } from "@opentelemetry/api";
import type { ChangeAudit } from "../audit/audit-event.js";

/**
 * Who a unit of work runs for and until when: the tenant every query is
 * scoped to, and the request's deadline. Built from the request context by
 * the handlers; no transport type travels below them.
 */
export interface Scope {
  readonly tenant: string;
  /** Absolute deadline in ms since the epoch, when the client set one. */
  readonly deadline?: number | undefined;
  /**
   * Set for a call that changes things: every transaction of the call that
   * writes records its audit event before it commits (see UnitOfWork).
   */
  readonly audit?: ChangeAudit | undefined;
  /**
   * The call's trace context (its server span) when tracing is on: the
   * parent of its units of work's spans, and what an operation it starts
   * stores for its tasks. Passed explicitly, not through AsyncLocalStorage
   * (see startTracing's `asyncContext`).
   */
  readonly trace?: Context | undefined;
}

/**
 * A scope that also says who acts: the roles the caller holds and the
 * credential it called with, for use cases whose rules depend on the caller
 * (an editor manages only the API keys it created).
 */
export interface Caller extends Scope {
  readonly roles: readonly string[];
  readonly credential: { readonly kind: string; readonly id: string };
}
