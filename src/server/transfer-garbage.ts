import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** V8's `gc()`, as `--expose-gc` defines it. */
type Collect = (options: { readonly type: "minor" | "major"; readonly execution: "sync" | "async" }) => void;

/** Options of TransferGarbage. */
export interface TransferGarbageOptions {
  /** Bytes moved between two collections. */
  readonly everyBytes: number;
  /** Least time between two collections, in ms: past that rate V8's own collections keep pace. */
  readonly minIntervalMs: number;
}

/**
 * Frees the short-lived buffers of large transfers (artifact uploads and
 * downloads) while they run. V8 frees a buffer's memory only when it
 * collects the small object that owns it, and a transfer makes two or three
 * such buffers per byte it moves (socket reads, PostgreSQL protocol
 * messages) but almost no other objects, so nothing makes V8 collect: it
 * waits until ~32 MiB of dead buffers have piled up (its "external memory
 * pressure" threshold, twice the default young generation), and a 50 MiB
 * transfer swells the process by that much. A minor collection (a
 * scavenge: young objects only, a few ms, what V8 would run anyway, only
 * sooner) every `everyBytes` moved keeps the pile to about that size.
 *
 * Calling V8's collector needs `--expose-gc`; it is switched on for
 * contexts made from now on and the function taken from a fresh one, so
 * the process's own global object gains no `gc`.
 */
export class TransferGarbage {
  readonly #options: TransferGarbageOptions;
  #collect: Collect | undefined;
  #moved = 0;
  #lastAt = 0;

  constructor(options: TransferGarbageOptions) {
    this.#options = options;
  }

  /** Counts `bytes` moved by a transfer; collects once enough have been. */
  readonly moved = (bytes: number): void => {
    this.#moved += bytes;
    if (this.#moved < this.#options.everyBytes) return;
    const now = performance.now();
    if (now - this.#lastAt < this.#options.minIntervalMs) return;
    this.#moved = 0;
    this.#lastAt = now;
    this.#collector()({ type: "minor", execution: "sync" });
  };

  #collector(): Collect {
    if (this.#collect === undefined) {
      setFlagsFromString("--expose-gc");
      this.#collect = runInNewContext("gc") as Collect;
    }
    return this.#collect;
  }
}
