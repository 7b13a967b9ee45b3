import { Counter, Gauge, type Registry } from "prom-client";
import type { QueueEvents } from "../operations/queue-events.js";
import type { QueueGroup } from "./queue-snapshot.js";
import type { FinalState } from "../operations/operation.js";

/** Options of OperationsMetrics.watch. */
export interface QueueWatchOptions {
  /** Reads the queue (readQueueSnapshot). */
  readonly snapshot: () => Promise<QueueGroup[]>;
  /** Streams open on this instance (StreamSlots.total). */
  readonly openStreams: () => number;
  /** ClaimTask long-polls waiting on this instance. */
  readonly claimWaits: () => number;
  /** How long one snapshot serves scrapes. */
  readonly cacheMs: number;
}

/**
 * The operations engine's metrics. Counters are told by the queue after each
 * change commits (QueueEvents); queue depth and the oldest task's age come
 * from one grouped query at scrape time, cached for `cacheMs` and shared by
 * concurrent scrapes, so a storm of scrapers costs one query per interval.
 * Depth and age are cluster-wide (every instance reports the same values):
 * aggregate them with max(), not sum().
 */
export class OperationsMetrics implements QueueEvents {
  readonly #claims: Counter;
  readonly #expiries: Counter;
  readonly #retries: Counter;
  readonly #completions: Counter;
  readonly #depth: Gauge;
  readonly #age: Gauge;
  #watch: QueueWatchOptions | undefined;
  #cached: { at: number; groups: Promise<QueueGroup[]> } | undefined;

  constructor(registry: Registry) {
    this.#claims = new Counter({ name: "anvil_operations_task_claims_total", help: "Tasks leased to workers.", labelNames: ["kind"], registers: [registry] });
    this.#expiries = new Counter({
      name: "anvil_operations_lease_expiries_total",
      help: "Leases that expired before their worker completed the task.",
      labelNames: ["kind"],
      registers: [registry],
    });
    this.#retries = new Counter({
      name: "anvil_operations_task_retries_total",
      help: "Failed attempts put back in the queue for another try.",
      labelNames: ["kind"],
      registers: [registry],
    });
    this.#completions = new Counter({
      name: "anvil_operations_completions_total",
      help: "Operations that ended, by outcome.",
      labelNames: ["outcome"],
      registers: [registry],
    });
    // compensation_failed: a saga's compensation failed for good; worth an alert, it needs a person.
    for (const outcome of ["succeeded", "failed", "cancelled", "compensation_failed"]) this.#completions.inc({ outcome }, 0);
    const metrics = this;
    this.#depth = new Gauge({
      name: "anvil_operations_queue_tasks",
      help: "Open tasks by kind and state (blocked, queued, leased), cluster-wide.",
      labelNames: ["kind", "state"],
      registers: [registry],
      async collect() {
        await metrics.#collect();
      },
    });
    this.#age = new Gauge({
      name: "anvil_operations_queue_oldest_age_seconds",
      help: "How long the oldest ready queued task of each kind has waited, cluster-wide.",
      labelNames: ["kind"],
      registers: [registry],
    });
    new Gauge({
      name: "anvil_operations_watch_streams",
      help: "WatchOperation streams open on this instance.",
      registers: [registry],
      collect() {
        const watch = metrics.#watch;
        if (watch) this.set(watch.openStreams());
      },
    });
    new Gauge({
      name: "anvil_operations_claim_waits",
      help: "ClaimTask calls waiting for a task on this instance.",
      registers: [registry],
      collect() {
        const watch = metrics.#watch;
        if (watch) this.set(watch.claimWaits());
      },
    });
  }

  /** Starts reporting the queue's depth and age and the open streams. */
  watch(options: QueueWatchOptions): void {
    this.#watch = options;
  }

  claimed(kind: string): void {
    this.#claims.inc({ kind });
  }

  leaseExpired(kind: string): void {
    this.#expiries.inc({ kind });
  }

  retried(kind: string): void {
    this.#retries.inc({ kind });
  }

  completed(outcome: FinalState): void {
    this.#completions.inc({ outcome });
  }

  /** Sets depth and age from the cached snapshot (both gauges, so they always agree). */
  async #collect(): Promise<void> {
    const watch = this.#watch;
    if (watch === undefined) return;
    const now = Date.now();
    if (this.#cached === undefined || now - this.#cached.at >= watch.cacheMs) {
      this.#cached = { at: now, groups: watch.snapshot() };
    }
    let groups: QueueGroup[];
    try {
      groups = await this.#cached.groups;
    } catch {
      // The database is away: the last values stay, and the next scrape tries again.
      this.#cached = undefined;
      return;
    }
    this.#depth.reset();
    this.#age.reset();
    for (const g of groups) {
      this.#depth.set({ kind: g.kind, state: g.state }, g.tasks);
      if (g.state === "queued") this.#age.set({ kind: g.kind }, g.oldestAgeSeconds);
    }
  }
}
