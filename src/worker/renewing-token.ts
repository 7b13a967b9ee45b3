/** Mints a token valid for `lifetimeSec` seconds. */
export type TokenMinter = (lifetimeSec: number) => Promise<string>;

/**
 * A token the worker mints itself and renews before it expires: a new one
 * is minted once `renewAt` of its lifetime has passed (80% by default), so
 * a long-running worker never sends an expired token and a clock a little
 * off still leaves a margin. Concurrent callers share one minting.
 */
export class RenewingToken {
  readonly #mint: TokenMinter;
  readonly #lifetimeSec: number;
  readonly #renewAfterMs: number;
  #current: Promise<string> | undefined;
  #renewAt = 0;

  constructor(mint: TokenMinter, lifetimeSec: number, renewAt = 0.8) {
    if (!(lifetimeSec > 0)) throw new Error(`token lifetime must be positive, got ${lifetimeSec}`);
    this.#mint = mint;
    this.#lifetimeSec = lifetimeSec;
    this.#renewAfterMs = lifetimeSec * 1000 * renewAt;
  }

  /** The current token, minting a new one first when it is due. */
  get(): Promise<string> {
    if (this.#current === undefined || Date.now() >= this.#renewAt) {
      this.#renewAt = Date.now() + this.#renewAfterMs;
      const minting = this.#mint(this.#lifetimeSec);
      this.#current = minting;
      // A failed minting is retried by the next caller, not kept.
      minting.catch(() => {
        if (this.#current === minting) this.#current = undefined;
      });
    }
    return this.#current;
  }
}
