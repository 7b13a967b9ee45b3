/** A connection pool's state at one moment, as the metrics report it. */
export interface PoolStats {
  /** Connections open. */
  readonly total: number;
  /** Open connections nobody holds. */
  readonly idle: number;
  /** Requests waiting for a connection. */
  readonly waiting: number;
}
