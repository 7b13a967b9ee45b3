import type pg from "pg";

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
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    return {
      query: (text: string, values?: readonly unknown[]) => {
        // Anything sent after a timeout would queue behind the lost query.
        if (broken) return Promise.reject(broken);
        return client.query(text, values as unknown[]).catch((err: unknown) => {
          if (err instanceof Error && /timeout/i.test(err.message) && !("code" in err && err.code)) broken = err;
          throw err;
        });
      },
      release: () => client.release(broken),
    };
  }

  end(): Promise<void> {
    return this.#pool.end();
  }
}

/** The slice of a pool client kysely uses. */
export interface FencedClient {
  query(text: string, values?: readonly unknown[]): Promise<pg.QueryResult>;
  release(): void;
}
