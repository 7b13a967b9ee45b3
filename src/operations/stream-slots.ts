import { ResourceExhaustedError } from "../shared/errors.js";

/**
 * Caps the concurrent streams each principal holds on this gateway
 * instance, so one client (or a reconnect loop gone wrong) cannot pin an
 * unbounded number of listeners, timers and database reads.
 */
export class StreamSlots {
  readonly #max: number;
  readonly #held = new Map<string, number>();

  constructor(maxPerPrincipal: number) {
    this.#max = maxPerPrincipal;
  }

  /** Takes a slot for `principal` (RESOURCE_EXHAUSTED when none is left); call the result to give it back. */
  acquire(principal: string): () => void {
    const held = this.#held.get(principal) ?? 0;
    if (held >= this.#max) {
      throw new ResourceExhaustedError(`at most ${this.#max} concurrent streams per caller; close one first`, { limit: String(this.#max) });
    }
    this.#held.set(principal, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = (this.#held.get(principal) ?? 1) - 1;
      if (now === 0) this.#held.delete(principal);
      else this.#held.set(principal, now);
    };
  }

  /** Streams currently held, over all principals. */
  get total(): number {
    let n = 0;
    for (const v of this.#held.values()) n += v;
    return n;
  }
}
