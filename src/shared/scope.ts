/**
 * Who a unit of work runs for and until when: the tenant every query is
 * scoped to, and the request's deadline. Built from the request context by
 * the handlers; no transport type travels below them.
 */
export interface Scope {
  readonly tenant: string;
  /** Absolute deadline in ms since the epoch, when the client set one. */
  readonly deadline?: number | undefined;
}
