import { ResourceExhaustedError } from "../shared/errors.js";

/**
 * Caps the concurrent long-lived calls (streams, waiting claims) each
 * credential holds on this gateway instance, so one client (or a reconnect
 * loop gone wrong) cannot pin an unbounded number of listeners, timers and
 * database reads. Keyed on the credential (`kind:id`), never on a claim its
 * holder can vary at will.
 */
export class StreamSlots {
  readonly #max: number;
  readonly #what: string;
  readonly #held = new Map<string, number>();

  /** `what` names the calls in the refusal, e.g. "concurrent streams". */
  constructor(maxPerCredential: number, what = "concurrent streams") {
    this.#max = maxPerCredential;
    this.#what = what;
  }

  /** Takes a slot for `credential` (RESOURCE_EXHAUSTED when none is left); call the result to give it back. */
  acquire(credential: string): () => void {
    const held = this.#held.get(credential) ?? 0;
    if (held >= this.#max) {
      throw new ResourceExhaustedError(`at most ${this.#max} ${this.#what} per credential; close one first`, { limit: String(this.#max) });
    }
    this.#held.set(credential, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = (this.#held.get(credential) ?? 1) - 1;
      if (now === 0) this.#held.delete(credential);
      else this.#held.set(credential, now);
    };
  }

  /** Slots currently held, over all credentials. */
  get total(): number {
    let n = 0;
    for (const v of this.#held.values()) n += v;
    return n;
  }
}
