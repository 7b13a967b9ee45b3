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
  /**
   * Why the schema is not the expected one, or undefined when it is (see
   * schemaMismatch). Without it only the ping counts.
   */
  readonly schemaCheck?: () => Promise<string | undefined>;
  /**
   * How long a current schema is believed without asking again: it changes
   * only at deploys, so probes stay one cheap ping. A mismatch is re-checked
   * as often as the ping, so the instance turns ready soon after a migration.
   */
  readonly schemaCacheMs?: number;
}

/** Whether the gateway can serve, and if not, why (a sentence for operators). */
export type Readiness = { readonly ready: true } | { readonly ready: false; readonly reason: string };

/**
 * Whether the gateway can serve: not draining, the database answered a ping
 * recently, and its schema is the one this build expects. One check at a
 * time is in flight, and its result is cached, so health traffic never
 * loads the database.
 */
export class ServingMonitor {
  private readonly pingTimeoutMs: number;
  private readonly cacheMs: number;
  private readonly pollMs: number;
  private readonly schemaCacheMs: number;
  private cached: { readonly at: number; readonly readiness: Readiness } | undefined;
  private inFlight: Promise<Readiness> | undefined;
  private schemaCheckedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly ping: () => Promise<void>,
    private readonly isDraining: () => boolean,
    private readonly options: ServingMonitorOptions = {},
  ) {
    this.pingTimeoutMs = options.pingTimeoutMs ?? 1_000;
    this.cacheMs = options.cacheMs ?? 1_000;
    this.pollMs = options.pollMs ?? 1_000;
    this.schemaCacheMs = options.schemaCacheMs ?? 60_000;
  }

  /** True while the gateway can serve requests. */
  async serving(): Promise<boolean> {
    return (await this.readiness()).ready;
  }

  /**
   * Whether the gateway can serve requests, with the reason when it cannot.
   * `livePing` pings now instead of reusing a recent answer (an HTTP probe
   * is already rate-limited by its prober); the schema check stays cached.
   */
  async readiness(livePing = false): Promise<Readiness> {
    const draining: Readiness = { ready: false, reason: "draining" };
    if (this.isDraining()) return draining;
    const database = await (livePing ? this.check() : this.databaseReady());
    return this.isDraining() ? draining : database;
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

  private databaseReady(): Promise<Readiness> {
    if (this.cached && Date.now() - this.cached.at < this.cacheMs) return Promise.resolve(this.cached.readiness);
    this.inFlight ??= this.check().then((readiness) => {
      this.cached = { at: Date.now(), readiness };
      this.inFlight = undefined;
      return readiness;
    });
    return this.inFlight;
  }

  private async check(): Promise<Readiness> {
    try {
      await withTimeout(this.ping(), this.pingTimeoutMs);
    } catch {
      return { ready: false, reason: "database unreachable" };
    }
    if (!this.options.schemaCheck || Date.now() - this.schemaCheckedAt < this.schemaCacheMs) return { ready: true };
    let mismatch: string | undefined;
    try {
      mismatch = await withTimeout(this.options.schemaCheck(), this.pingTimeoutMs);
    } catch {
      return { ready: false, reason: "database unreachable" };
    }
    if (mismatch !== undefined) return { ready: false, reason: mismatch };
    this.schemaCheckedAt = Date.now();
    return { ready: true };
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}
