/**
 * An abort signal made only if something asks for it. Handlers seldom look
 * at `ctx.signal`, yet an AbortController per call is measurable on the
 * unary hot path; this keeps the call's abort state and creates the
 * controller (already aborted, if the call was) on first use.
 */
export class LazyAbort {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}
