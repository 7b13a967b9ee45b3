/**
 * A wake-up that cannot be missed: a notify() that arrives while nobody is
 * waiting is remembered, and the next wait() returns at once. Waits are
 * bounded by a timeout (the poll interval) and end when `signal` aborts.
 */
export class Waker {
  #pending = false;
  #wake: (() => void) | undefined;

  notify(): void {
    this.#pending = true;
    this.#wake?.();
  }

  /** Resolves on notify(), after `ms`, or when `signal` aborts — whichever comes first. */
  async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (!this.#pending && !signal.aborted && ms > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          this.#wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener("abort", done, { once: true });
        this.#wake = done;
      });
    }
    this.#pending = false;
  }
}
