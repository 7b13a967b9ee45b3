import { createHash } from "node:crypto";
import type pg from "pg";
import { UnavailableError } from "../shared/errors.js";
import type { PoolStats } from "./pool-stats.js";

// Statements are prepared once per connection and reused by name: PostgreSQL
// then skips parsing and planning on every later call (a point read drops
// from ~180 µs to ~140 µs). Bounded so that statements whose text varies
// (multi-row inserts, IN lists) cannot grow a connection's cache without end.
const maxPreparedPerConnection = 200;
const maxPreparedLength = 4_000;
const prepared = new WeakMap<pg.PoolClient, Set<string>>();
const names = new Map<string, string>();

function statementName(text: string): string {
  let name = names.get(text);
  if (name === undefined) {
    name = `anvil_${createHash("sha1").update(text).digest("base64url").slice(0, 20)}`;
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent but for cost: a text not remembered is hashed to the same name again
    if (names.size < 10_000) names.set(text, name);
  }
  return name;
}

/**
 * The pool kysely gets for PostgreSQL: node-postgres's pool, except that a
 * connection whose query hit the client-side `query_timeout` is discarded
 * instead of being returned to the pool.
 *
 * The server's statement_timeout bounds queries only while the server can
 * still talk to us. When the network silently drops packets, nothing comes
 * back: node-postgres's query_timeout fails the query, but leaves the
 * connection waiting for an answer that never arrives — and kysely then
 * releases that connection into the pool, where the next request would hang
 * on it. Fencing it off keeps a network cut from eating the pool.
 */
export class FencedPgPool {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async connect(): Promise<FencedClient> {
    const client = await this.#pool.connect().catch((err: unknown) => {
      // Whatever stops a connection from opening — refused, timed out, the
      // database closed to connections (55000), missing (3D000), the role
      // refused (class 28), too many connections (53300) — no statement ran:
      // the call is safe to retry, so it is UNAVAILABLE, never INTERNAL.
      throw new UnavailableError(undefined, { cause: err });
    });
    let broken: Error | undefined;
    return {
      query: (text: string, values?: readonly unknown[]) => {
        // Anything sent after a timeout would queue behind the lost query.
        if (broken) return Promise.reject(broken);
        return client.query(queryConfig(client, text, values)).catch((err: unknown) => {
          if (err instanceof Error && /timeout/i.test(err.message) && !("code" in err && err.code)) broken = err;
          // Another instance migrated the schema under a prepared `select *`:
          // this connection's statements are stale, so retire it.
          if (err instanceof Error && /cached plan must not change result type/.test(err.message)) broken = err;
          throw err;
        });
      },
      release: () => client.release(broken),
    };
  }

  /** Open connections, idle ones, and requests waiting for one (for the metrics). */
  stats(): PoolStats {
    return { total: this.#pool.totalCount, idle: this.#pool.idleCount, waiting: this.#pool.waitingCount };
  }

  end(): Promise<void> {
    return this.#pool.end();
  }
}

function queryConfig(client: pg.PoolClient, text: string, values: readonly unknown[] | undefined): pg.QueryConfig {
  const plain = { text, values: values as unknown[] };
  // Transaction control and one-off texts are not worth a prepared statement.
  if (text.length > maxPreparedLength || values === undefined || values.length === 0) return plain;
  let known = prepared.get(client);
  if (known === undefined) prepared.set(client, (known = new Set()));
  const name = statementName(text);
  if (!known.has(name)) {
    if (known.size >= maxPreparedPerConnection) return plain;
    known.add(name);
  }
  return { ...plain, name };
}

/** The slice of a pool client kysely uses. */
export interface FencedClient {
  query(text: string, values?: readonly unknown[]): Promise<pg.QueryResult>;
  release(): void;
}
