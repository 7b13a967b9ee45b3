import type { Logger } from "pino";
import type { SessionLock } from "../db/session-lock.js";
import type { HousekeepingEvents, HousekeepingJob } from "./housekeeping-job.js";

/** Options of Housekeeper. */
export interface HousekeeperOptions {
  /** Elects the one instance that sweeps (DatabaseHandle.sessionLock). */
  readonly lock: SessionLock;
  /** Run in order on every sweep. */
  readonly jobs: readonly HousekeepingJob[];
  /** Time between the end of one sweep and the next attempt. */
  readonly intervalMs: number;
  readonly log: Logger;
  readonly events?: HousekeepingEvents;
}

/**
 * The cluster's background sweeper. Every instance runs one; on each tick
 * it tries the housekeeping lock, and only the holder sweeps, so the work
 * is done once per cluster. The holder keeps the lock until it stops or
 * dies; another instance takes it at its next tick. Each job runs on its
 * own: one failing (the database away, a statement timing out) is logged
 * and the others still run; the next sweep tries again.
 */
export class Housekeeper {
  readonly #options: HousekeeperOptions;
  readonly #stop = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;

  constructor(options: HousekeeperOptions) {
    this.#options = options;
  }

  /** Sweeps now (when elected), then every `intervalMs`. */
  start(): void {
    this.#schedule(0);
  }

  /** Stops sweeping: the sweep in progress ends after its current batch; the lock is given up. */
  async close(): Promise<void> {
    this.#stop.abort();
    clearTimeout(this.#timer);
    await this.#sweeping;
    await this.#options.lock.release();
    this.#options.events?.leader(false);
  }

  #schedule(ms: number): void {
    if (this.#stop.signal.aborted) return;
    this.#timer = setTimeout(() => {
      this.#sweeping = this.#tick().finally(() => {
        this.#sweeping = undefined;
        this.#schedule(this.#options.intervalMs);
      });
    }, ms);
    // The sweeper never keeps the process alive on its own.
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    const { lock, jobs, log, events } = this.#options;
    const held = await lock.acquire();
    events?.leader(held);
    if (!held) return;
    for (const job of jobs) {
      if (this.#stop.signal.aborted) return;
      const counted: Record<string, number> = {};
      let failed = false;
      try {
        await job.run(this.#stop.signal, (what, rows) => {
          counted[what] = (counted[what] ?? 0) + rows;
          events?.rows(job.name, what, rows);
        });
      } catch (err) {
        failed = true;
        log.warn({ err, job: job.name, counted }, "housekeeping job failed; the next sweep tries again");
      }
      events?.swept(job.name, failed);
      if (!failed && Object.values(counted).some((n) => n > 0)) log.info({ job: job.name, counted }, "housekeeping");
    }
  }
}
