import { Counter, Gauge, type Registry } from "prom-client";
import type { PoolStats } from "../db/pool-stats.js";
import { HistogramCells, labelText, type SeriesMetrics, writeHistogram } from "./series-metric.js";

const statementBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 15];

/**
 * The database's metrics: the pool's state (read when scraped), each
 * statement's duration by statement name, and the failures a client is
 * told to retry — transaction conflicts (ABORTED) and an unreachable
 * database (UNAVAILABLE).
 *
 * Statements are labelled by name (see statementName: `select users`,
 * `tasks.finishAllAmong`): bounded, and readable, where the prepared
 * statement's own name is a hash of its text. Values never reach a label.
 */
export class DbMetrics {
  // By statement name and outcome; counted in plain fields (see series-metric.ts).
  readonly #statements = new Map<string, { labels: string; cells: HistogramCells }>();
  readonly #conflicts: Counter;
  readonly #unavailable: Counter;
  #pool: (() => PoolStats) | undefined;

  constructor(registry: Registry, series: SeriesMetrics) {
    const pool = () => this.#pool?.();
    new Gauge({
      name: "anvil_db_pool_connections",
      help: "Database connections open (the embedded database has one).",
      registers: [registry],
      collect() {
        const s = pool();
        if (s) this.set(s.total);
      },
    });
    new Gauge({
      name: "anvil_db_pool_idle_connections",
      help: "Open database connections nobody holds.",
      registers: [registry],
      collect() {
        const s = pool();
        if (s) this.set(s.idle);
      },
    });
    new Gauge({
      name: "anvil_db_pool_waiting_requests",
      help: "Requests waiting for a database connection.",
      registers: [registry],
      collect() {
        const s = pool();
        if (s) this.set(s.waiting);
      },
    });
    series.register({
      name: "anvil_db_statement_seconds",
      help: "Duration of each SQL statement, by statement name (its kind and first table, or the name its repository gives SQL text) and outcome.",
      type: "histogram",
      write: (out) => {
        for (const s of this.#statements.values()) writeHistogram(out, "anvil_db_statement_seconds", s.labels, s.cells);
      },
    });
    this.#conflicts = new Counter({
      name: "anvil_db_transaction_conflicts_total",
      help: "Transactions that lost a race (serialization failure, deadlock): answered ABORTED for the client to retry, or, a claim's, tried again at its next wake-up.",
      registers: [registry],
    });
    this.#unavailable = new Counter({
      name: "anvil_db_unavailable_total",
      help: "Database work answered UNAVAILABLE: the database refused or lost the connection.",
      registers: [registry],
    });
    this.#conflicts.inc(0);
    this.#unavailable.inc(0);
  }

  /** Reads the pool's state at each scrape from `stats`. */
  watchPool(stats: () => PoolStats): void {
    this.#pool = stats;
  }

  /** Records one statement (openDatabase's StatementObserver). */
  readonly statement = (statement: string, seconds: number, failed: boolean): void => {
    const outcome = failed ? "error" : "ok";
    const key = `${outcome} ${statement}`;
    let series = this.#statements.get(key);
    if (series === undefined) this.#statements.set(key, (series = { labels: labelText({ statement, outcome }), cells: new HistogramCells(statementBuckets) }));
    series.cells.observe(seconds);
  };

  /** Counts a transaction conflict answered ABORTED. */
  conflict(): void {
    this.#conflicts.inc();
  }

  /** Counts database work answered UNAVAILABLE. */
  unavailable(): void {
    this.#unavailable.inc();
  }
}
