import { UnavailableError } from "../shared/errors.js";

/** One call's signal; close() when the call is over. */
export interface CallSignal {
  /** Aborts with the call's own reason (its deadline, the client leaving) or with UnavailableError when the instance drains. */
  readonly signal: AbortSignal;
  close(): void;
}

/**
 * Per-call abort signals that also abort when the instance drains. Calls
 * are kept in a set and aborted one by one on drain, instead of each call
 * adding a listener to one long-lived "stopping" signal: with more than ten
 * open watches or waiting claims that signal would carry more than ten
 * listeners (Node's MaxListenersExceededWarning), and every listener would
 * stay as long as its call.
 */
export class DrainSignals {
  readonly #open = new Set<AbortController>();
  #drained = false;

  /** A signal for one call, linked to the call's own `callSignal` (one listener, on a per-call signal). */
  open(callSignal: AbortSignal): CallSignal {
    const controller = new AbortController();
    const onCallAbort = () => controller.abort(callSignal.reason);
    if (callSignal.aborted) onCallAbort();
    else if (this.#drained) controller.abort(drainReason());
    else {
      callSignal.addEventListener("abort", onCallAbort, { once: true });
      this.#open.add(controller);
    }
    return {
      signal: controller.signal,
      close: () => {
        callSignal.removeEventListener("abort", onCallAbort);
        this.#open.delete(controller);
      },
    };
  }

  /** Aborts every open call and every later one with UNAVAILABLE: clients retry on another instance. */
  drain(): void {
    this.#drained = true;
    for (const controller of this.#open) controller.abort(drainReason());
    this.#open.clear();
  }

  /** Calls currently open (for tests: a finished call leaves none). */
  get size(): number {
    return this.#open.size;
  }
}

function drainReason(): UnavailableError {
  return new UnavailableError("this instance is shutting down; retry (a watch resumes with after_sequence)");
}
