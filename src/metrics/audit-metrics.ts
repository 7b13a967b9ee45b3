import { Counter, Gauge, type Registry } from "prom-client";
import type { AuditQueueEvents } from "../audit/audit-queue.js";

/**
 * The audit log's metrics: the refusal queue's depth (read when scraped),
 * refusals dropped because the queue was full or could not be written,
 * refusals written, and platform refusals — those whose credential names
 * no tenant, which are only counted here and logged, never written to any
 * tenant's audit.
 */
export class AuditMetrics implements AuditQueueEvents {
  readonly #dropped: Counter;
  readonly #written: Counter;
  readonly #platform: Counter;
  #depth: (() => number) | undefined;

  constructor(registry: Registry) {
    const depth = () => this.#depth?.() ?? 0;
    new Gauge({
      name: "anvil_audit_queue_events",
      help: "Refusals waiting in this instance's queue to be written to the audit log.",
      registers: [registry],
      collect() {
        this.set(depth());
      },
    });
    this.#dropped = new Counter({
      name: "anvil_audit_dropped_events_total",
      help: "Refusals not written to the audit log: the queue was full (overflow) or the batch failed to write (write_failed).",
      labelNames: ["reason"],
      registers: [registry],
    });
    for (const reason of ["overflow", "write_failed"]) this.#dropped.inc({ reason }, 0);
    this.#written = new Counter({
      name: "anvil_audit_refusal_events_total",
      help: "Refusal events (and dropped-count events) written to tenants' audit logs.",
      registers: [registry],
    });
    this.#platform = new Counter({
      name: "anvil_audit_platform_refusals_total",
      help: "Refused calls whose credential names no tenant: logged and counted, not written to any audit log.",
      registers: [registry],
    });
  }

  /** Reports the depth of `queue` at each scrape. */
  watch(depth: () => number): void {
    this.#depth = depth;
  }

  dropped(reason: "overflow" | "write_failed", count: number): void {
    this.#dropped.inc({ reason }, count);
  }

  written(count: number): void {
    this.#written.inc(count);
  }

  platform(count: number): void {
    this.#platform.inc(count);
  }
}
