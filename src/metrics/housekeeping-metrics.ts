import { Counter, Gauge, type Registry } from "prom-client";
import type { HousekeepingEvents } from "../housekeeping/housekeeping-job.js";

/**
 * The housekeeping sweeper's metrics: whether this instance is the one
 * sweeping, sweeps by job and outcome, and rows handled by job and table
 * (deleted rows; for lease recovery, leases returned to the queue or ended).
 * Only the leader counts rows, so sum() across instances gives the cluster.
 */
export class HousekeepingMetrics implements HousekeepingEvents {
  readonly #leader: Gauge;
  readonly #sweeps: Counter;
  readonly #rows: Counter;

  constructor(registry: Registry) {
    this.#leader = new Gauge({
      name: "anvil_housekeeping_leader",
      help: "1 while this instance holds the housekeeping lock (the one sweeping the cluster), else 0.",
      registers: [registry],
    });
    this.#leader.set(0);
    this.#sweeps = new Counter({
      name: "anvil_housekeeping_sweeps_total",
      help: "Housekeeping job runs on this instance, by job and outcome (ok, failed).",
      labelNames: ["job", "outcome"],
      registers: [registry],
    });
    this.#rows = new Counter({
      name: "anvil_housekeeping_rows_total",
      help: "Rows the housekeeping sweeper deleted (or, for leases_expired, leases it ended), by job and table.",
      labelNames: ["job", "table"],
      registers: [registry],
    });
  }

  /** Series present from start at zero, so rates are 0 before the first sweep, never absent. */
  preinitialise(jobs: ReadonlyArray<{ readonly name: string; readonly counts: readonly string[] }>): void {
    for (const { name: job, counts } of jobs) {
      for (const outcome of ["ok", "failed"]) this.#sweeps.inc({ job, outcome }, 0);
      for (const table of counts) this.#rows.inc({ job, table }, 0);
    }
  }

  leader(held: boolean): void {
    this.#leader.set(held ? 1 : 0);
  }

  rows(job: string, table: string, rows: number): void {
    if (rows > 0) this.#rows.inc({ job, table }, rows);
  }

  swept(job: string, failed: boolean): void {
    this.#sweeps.inc({ job, outcome: failed ? "failed" : "ok" });
  }
}
