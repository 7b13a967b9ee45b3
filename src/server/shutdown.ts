import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { ShutdownSettings } from "../config.js";

/** What the shutdown drives of the built app (see App in build.ts). */
export interface Drainable {
  /** Readiness turns NOT_SERVING; every call is still served. */
  unready(): void;
  /** Waiting ClaimTask calls return empty and streams end UNAVAILABLE, now and from now on. */
  drain(): void;
  /** Stops background work and closes the database pool. */
  close(): Promise<void>;
}

/** Something listening that a shutdown closes: the API port (with a grace period), the metrics port. */
export interface Closable {
  close(graceMs?: number): Promise<void>;
}

/** Options of Shutdown. */
export interface ShutdownOptions extends ShutdownSettings {
  readonly log: Logger;
  /** Runs last, once the pool has closed (the tracer exporting its last spans). */
  readonly flush?: () => Promise<void>;
  /** Ends the process (tests of the sequence pass their own). */
  readonly exit?: (code: number) => void;
}

// Beyond the drain delay and the shutdown timeout, closing the pool and the
// background work gets this long before the hard timeout ends the process.
const closeMarginMs = 5_000;

/**
 * The gateway's answer to SIGTERM, in the order load balancers expect:
 *
 * 1. At once: readiness (/readyz, gRPC health) turns NOT_SERVING while every
 *    call is still served, for `drainDelayMs`, so balancers stop sending
 *    new traffic before anything is refused.
 * 2. Then it stops accepting connections; HTTP/2 sessions get GOAWAY, each
 *    HTTP/1.1 keep-alive connection answers its request in flight with
 *    `Connection: close` (idle ones close at once); waiting ClaimTask calls
 *    return empty and streams end UNAVAILABLE (clients resume elsewhere);
 *    unary calls in flight get up to `shutdownTimeoutMs` to finish, then
 *    their connections are cut.
 * 3. The metrics port and the database pool close, traces are flushed, and
 *    the process exits 0.
 *
 * A second signal exits at once (1); so does a sequence that outlasts
 * drain delay + shutdown timeout + 5 s. Worker leases are left alone: the
 * tasks stay with their workers, whichever instance they talk to next.
 */
export class Shutdown {
  readonly #app: Drainable;
  readonly #listeners: readonly Closable[];
  readonly #options: ShutdownOptions;
  readonly #exit: (code: number) => void;
  #started = false;

  /** `listeners[0]` is the API port; the others (the metrics port) close after it. */
  constructor(app: Drainable, listeners: readonly Closable[], options: ShutdownOptions) {
    this.#app = app;
    this.#listeners = listeners;
    this.#options = options;
    this.#exit = options.exit ?? ((code) => process.exit(code));
  }

  /** Handles one stop signal: the first drains, the second exits at once. */
  signal(name: string): void {
    const log = this.#options.log;
    if (this.#started) {
      log.warn({ signal: name }, "second stop signal: exiting at once");
      this.#exit(1);
      return;
    }
    this.#started = true;
    const boundMs = this.#options.drainDelayMs + this.#options.shutdownTimeoutMs + closeMarginMs;
    setTimeout(() => {
      log.error({ boundMs }, "shutdown took too long: exiting");
      this.#exit(1);
    }, boundMs).unref();
    this.#run(name).then(
      () => this.#exit(0),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        this.#exit(1);
      },
    );
  }

  /** Calls `signal` on SIGTERM and SIGINT. */
  listen(): void {
    process.on("SIGTERM", () => this.signal("SIGTERM"));
    process.on("SIGINT", () => this.signal("SIGINT"));
  }

  async #run(signal: string): Promise<void> {
    const { log, drainDelayMs, shutdownTimeoutMs } = this.#options;
    log.info({ signal, drainDelayMs }, "draining: readiness is NOT_SERVING, still serving until the drain delay ends");
    this.#app.unready();
    if (drainDelayMs > 0) await sleep(drainDelayMs);
    log.info({ shutdownTimeoutMs }, "stopping: no new connections, in-flight calls finishing");
    const [api, ...others] = this.#listeners;
    // The port first, so that clients whose stream or claim ends now
    // reconnect elsewhere rather than here.
    const closed = api?.close(shutdownTimeoutMs);
    this.#app.drain();
    await closed;
    for (const listener of others) await listener.close();
    await this.#app.close();
    log.info("stopped");
    await this.#options.flush?.();
  }
}
