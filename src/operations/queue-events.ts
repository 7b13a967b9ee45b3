import type { FinalState } from "./operation.js";

/**
 * What the task queue reports as it runs, after each change commits (the
 * metrics count these; a rolled-back claim was never a claim).
 */
export interface QueueEvents {
  /** A worker leased a task of `kind`. */
  claimed(kind: string): void;
  /** A task's lease expired before its worker completed it. */
  leaseExpired(kind: string): void;
  /** A failed attempt was put back in the queue for another try. */
  retried(kind: string): void;
  /** An operation ended. */
  completed(outcome: FinalState): void;
}
