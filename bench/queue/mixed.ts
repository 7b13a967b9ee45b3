import { quantile } from "../load/load-result.js";

/** What a Mixed run measured: starts while workers drain. */
export interface MixedResult {
  /** Starts answered per second during the window. */
  readonly startsPerSecond: number;
  /** Tasks completed per second during the window. */
  readonly tasksPerSecond: number;
  /** From a start's answer to its task's completion, over every start of the window (ms). */
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
}

/**
 * Times starts against completions: started(id) when a start is answered,
 * completed(id) when its task's completion is. A completion can arrive
 * before its start's answer (a fast worker): it counts as 0 ms.
 */
export class MixedClock {
  readonly #started = new Map<string, number>();
  readonly #early = new Set<string>();
  readonly #latencies: number[] = [];
  #windowStart = 0;
  #windowEnd = Infinity;
  #startsInWindow = 0;
  #completedInWindow = 0;
  #allDone: (() => void) | undefined;

  /** Opens the window for `seconds`; returns when it ends (performance.now() time). */
  open(seconds: number): number {
    this.#windowStart = performance.now();
    this.#windowEnd = this.#windowStart + seconds * 1000;
    return this.#windowEnd;
  }

  started(id: string): void {
    if (performance.now() < this.#windowEnd) this.#startsInWindow++;
    if (this.#early.delete(id)) this.#latencies.push(0);
    else this.#started.set(id, performance.now());
  }

  completed(id: string): void {
    const now = performance.now();
    if (now < this.#windowEnd) this.#completedInWindow++;
    const at = this.#started.get(id);
    if (at === undefined) {
      this.#early.add(id);
      return;
    }
    this.#started.delete(id);
    this.#latencies.push(now - at);
    if (this.#started.size === 0 && now >= this.#windowEnd) this.#allDone?.();
  }

  /** Resolves once the window is over and every start it answered has completed. */
  async drained(): Promise<void> {
    if (this.#started.size === 0) return;
    await new Promise<void>((resolve) => (this.#allDone = resolve));
  }

  result(): MixedResult {
    const seconds = (this.#windowEnd - this.#windowStart) / 1000;
    const sorted = [...this.#latencies].sort((a, b) => a - b);
    return {
      startsPerSecond: this.#startsInWindow / seconds,
      tasksPerSecond: this.#completedInWindow / seconds,
      p50Ms: quantile(sorted, 0.5),
      p95Ms: quantile(sorted, 0.95),
      p99Ms: quantile(sorted, 0.99),
    };
  }
}
