import { setTimeout as sleep } from "node:timers/promises";
import { UnavailableError } from "../../shared/errors.js";

/** Options of ServingMonitor; the defaults suit load balancers probing every few seconds. */
export interface ServingMonitorOptions {
  /** A ping slower than this counts as unreachable. */
  readonly pingTimeoutMs?: number;
  /** How long a ping result is reused, so frequent Checks cost one query. */
  readonly cacheMs?: number;
  /** How often each Watch re-evaluates while it is open. */
  readonly pollMs?: number;
}

/**
 * Whether the gateway can serve: not draining, and the database answered a
 * ping recently. One ping at a time is in flight, and its result is cached
 * briefly, so health traffic never loads the database.
 */
export class ServingMonitor {
  private readonly pingTimeoutMs: number;
  private readonly cacheMs: number;
  private readonly pollMs: number;
  private cached: { readonly at: number; readonly reachable: boolean } | undefined;
  private inFlight: Promise<boolean> | undefined;

  constructor(
    private readonly ping: () => Promise<void>,
    private readonly isDraining: () => boolean,
    options: ServingMonitorOptions = {},
  ) {
    this.pingTimeoutMs = options.pingTimeoutMs ?? 1_000;
    this.cacheMs = options.cacheMs ?? 1_000;
    this.pollMs = options.pollMs ?? 1_000;
  }

  /** True while the gateway can serve requests. */
  async serving(): Promise<boolean> {
    if (this.isDraining()) return false;
    const reachable = await this.databaseReachable();
    return reachable && !this.isDraining();
  }

  /**
   * The current state, then every change, until `signal` aborts — then it
   * throws the signal's reason (the deadline, the client leaving) — or until
   * draining has been reported: it then throws UnavailableError, so the
   * stream does not hold the shutdown open and does not end as if it were
   * complete, and the client's retry finds the port closed. Each open watch
   * re-evaluates on an interval; with no watch open nothing polls.
   */
  async *changes(signal: AbortSignal): AsyncGenerator<boolean> {
    let last = await this.serving();
    yield last;
    while (!(last === false && this.isDraining())) {
      signal.throwIfAborted();
      await sleep(this.pollMs, undefined, { signal }).catch((err: unknown) => {
        signal.throwIfAborted();
        throw err;
      });
      const now = await this.serving();
      if (now !== last) {
        last = now;
        yield now;
      }
    }
    throw new UnavailableError("this instance is shutting down");
  }

  private databaseReachable(): Promise<boolean> {
    if (this.cached && Date.now() - this.cached.at < this.cacheMs) return Promise.resolve(this.cached.reachable);
    this.inFlight ??= withTimeout(this.ping(), this.pingTimeoutMs).then(
      () => true,
      () => false,
    ).then((reachable) => {
      this.cached = { at: Date.now(), reachable };
      this.inFlight = undefined;
      return reachable;
    });
    return this.inFlight;
  }
}

function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}
