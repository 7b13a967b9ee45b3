import { createHash } from "node:crypto";
import pg from "pg";
import type { Logger } from "pino";

/**
 * A lock one instance of the cluster holds at a time, for work that must
 * run once per cluster (the housekeeping sweeper). Whoever holds it keeps it
 * until release() or until its process dies; then the next acquire() by
 * another instance succeeds.
 */
export interface SessionLock {
  /**
   * Takes the lock when it is free, or confirms this instance still holds
   * it. False when another instance holds it, or when the database cannot
   * be reached (a holder cut off from the database must not act as one).
   */
  acquire(): Promise<boolean>;
  /** Gives the lock up (another instance may take it at once). */
  release(): Promise<void>;
}

/**
 * PostgreSQL's session-level advisory lock, held on a connection of its own
 * (never a pooled one: a session lock belongs to its connection, and a pool
 * would hand that connection to other work and drop it when idle). The
 * server releases it when the connection ends, which it notices at once when
 * the holding process dies; a connection lost silently is noticed by the
 * next acquire(), whose `select 1` fails within `timeoutMs`. Advisory locks
 * are per database, so clusters sharing a server do not contend.
 */
export class PgSessionLock implements SessionLock {
  readonly #url: string;
  readonly #key: bigint;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  #client: pg.Client | undefined;
  #held = false;

  /** `name` identifies the lock (hashed to PostgreSQL's 64-bit key). */
  constructor(url: string, name: string, log: Logger, timeoutMs = 5_000) {
    this.#url = url;
    this.#key = lockKey(name);
    this.#log = log;
    this.#timeoutMs = timeoutMs;
  }

  async acquire(): Promise<boolean> {
    try {
      const client = await this.#connect();
      // Stryker disable next-line BlockStatement,ConditionalExpression: equivalent but for cost: taking the lock again on its own session also answers true (advisory locks are re-entrant), and fails as this does on a dead connection
      if (this.#held) {
        // Stryker disable next-line StringLiteral: an empty statement, too, succeeds on a live connection and fails on a dead one
        await client.query("select 1");
        return true;
      }
      const { rows } = await client.query<{ locked: boolean }>("select pg_try_advisory_lock($1) as locked", [this.#key.toString()]);
      // Stryker disable next-line OptionalChaining: the select always returns its one row
      this.#held = rows[0]?.locked === true;
      return this.#held;
    } catch (err) {
      this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, "session lock: database unreachable; not holding the lock");
      this.#drop();
      return false;
    }
  }

  async release(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    this.#held = false;
    // Ending the session releases every lock it holds.
    await client?.end().catch(() => undefined);
  }

  async #connect(): Promise<pg.Client> {
    if (this.#client) return this.#client;
    const client = new pg.Client({
      connectionString: this.#url,
      keepAlive: true,
      application_name: "anvil-session-lock",
      connectionTimeoutMillis: this.#timeoutMs,
      query_timeout: this.#timeoutMs,
    });
    // A failed connection is noticed by the next query; without a listener node-postgres would end the process.
    client.on("error", () => {
      if (this.#client === client) this.#drop();
    });
    await client.connect();
    this.#client = client;
    return client;
  }

  #drop(): void {
    const client = this.#client;
    this.#client = undefined;
    this.#held = false;
    client?.end().catch(() => undefined);
  }
}

/** One process, one database: the embedded database's lock is always this process's. */
export const processLock: SessionLock = {
  acquire: async () => true,
  release: async () => {},
};

/** A stable signed 64-bit key for `name`. */
function lockKey(name: string): bigint {
  return createHash("sha256").update(name).digest().readBigInt64BE(0);
}
