import { collectDefaultMetrics, Registry } from "prom-client";
import { AuditMetrics } from "./audit-metrics.js";
import { DbMetrics } from "./db-metrics.js";
import { HousekeepingMetrics } from "./housekeeping-metrics.js";
import { OperationsMetrics } from "./operations-metrics.js";
import { RateLimitMetrics } from "./rate-limit-metrics.js";
import { RpcMetrics } from "./rpc-metrics.js";
import { SeriesMetrics } from "./series-metric.js";

/**
 * The gateway's metrics: one registry per built app (tests build several
 * in one process, so nothing is registered globally), with prom-client's
 * process and event-loop defaults and each area's metrics, handed to the
 * parts that record them. The per-call series (RPCs, statements) are kept
 * and written apart from prom-client's registry (see SeriesMetrics); text()
 * is the whole scrape.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #series = new SeriesMetrics();
  readonly rpc: RpcMetrics;
  readonly db: DbMetrics;
  readonly operations: OperationsMetrics;
  readonly housekeeping: HousekeepingMetrics;
  readonly rateLimits: RateLimitMetrics;
  readonly audit: AuditMetrics;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters, which promtool (and Prometheus's naming
    // rules) reject; the per-type gauges without the suffix carry the same.
    for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
      this.registry.removeSingleMetric(name);
    }
    this.rpc = new RpcMetrics(this.#series);
    this.db = new DbMetrics(this.registry, this.#series);
    this.operations = new OperationsMetrics(this.registry);
    this.housekeeping = new HousekeepingMetrics(this.registry);
    this.rateLimits = new RateLimitMetrics(this.registry);
    this.audit = new AuditMetrics(this.registry);
  }

  /** The content type of text(): the Prometheus text format, version 0.0.4. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text format: what `GET /metrics` answers. */
  async text(): Promise<string> {
    return `${await this.registry.metrics()}\n${this.#series.text()}`;
  }
}
