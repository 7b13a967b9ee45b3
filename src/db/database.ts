import { mkdirSync, readFileSync } from "node:fs";
import { Kysely, type LogEvent, PostgresDialect, type PostgresPool, type QueryId, sql } from "kysely";
import pg from "pg";
import type { Logger } from "pino";
import type { Database } from "./schema.js";
import { type Announcement, AfterCommitAnnouncer, type Announcer } from "./after-commit-announcer.js";
import { FencedPgPool } from "./fenced-pg-pool.js";
import { type NotificationHandler, PgNotificationListener } from "./pg-notification-listener.js";
import { PGlitePool } from "./pglite-pool.js";
import { PgSessionLock, processLock, type SessionLock } from "./session-lock.js";
import type { PoolStats } from "./pool-stats.js";
import { statementName } from "./statement-name.js";

/**
 * Told of every statement kysely runs, by name (statementName), with its
 * duration and its query id (what a tracing plugin filed it under): the
 * metrics' and traces' hook (no SQL values reach it).
 */
export type StatementObserver = (name: string, seconds: number, failed: boolean, queryId: QueryId) => void;

/** Where the data lives: a PostgreSQL server, or the embedded PGlite database. */
export type DatabaseTarget =
  | { readonly kind: "postgres"; readonly url: string; readonly poolSize: number; readonly statementTimeoutMs: number }
  | { readonly kind: "pglite"; readonly dataDir: string; readonly seed?: string | undefined };

/** An open database: the kysely instance plus what the process needs to run and stop it. */
export interface DatabaseHandle extends Announcer {
  readonly kind: DatabaseTarget["kind"];
  readonly db: Kysely<Database>;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  /**
   * Delivers every notification on `channel` to `onMessage` until the
   * returned function is called: this process's announcements at once,
   * other processes' NOTIFYs through the database. PostgreSQL: one
   * dedicated listening connection per process, reconnecting on failure;
   * PGlite: its own LISTEN support. Notifications can be lost while a
   * connection is down: treat them as wake-ups, never as the data itself.
   * `onGap` is called whenever notifications may have been lost (the
   * listening connection failed, and again once it listens anew), for
   * callers that cache what notifications invalidate.
   */
  listen(channel: string, onMessage: NotificationHandler, onGap?: () => void): Promise<() => Promise<void>>;
  /**
   * NOTIFYs what a committed transaction registered (UnitOfWork calls it
   * after the commit): this process's listeners at once, other processes
   * through the database, coalesced (AfterCommitAnnouncer).
   */
  announce(announcements: Iterable<Announcement>): void;
  /** The connection pool's state now. */
  poolStats(): PoolStats;
  /**
   * A lock that one instance of the cluster holds at a time (work to run
   * once per cluster). PostgreSQL: a session advisory lock on a connection
   * of its own; PGlite: one process, always granted.
   */
  sessionLock(name: string): SessionLock;
  close(): Promise<void>;
}

/**
 * Opens the database. For PostgreSQL the pool gets connect, statement and
 * idle-in-transaction timeouts, and error listeners on the pool and on every
 * client: node-postgres ends the process on an unhandled client error, and a
 * restarting server must not take the gateway down with it.
 */
export async function openDatabase(target: DatabaseTarget, log: Logger, observe?: StatementObserver): Promise<DatabaseHandle> {
  const statementLog = observe === undefined ? undefined : (event: LogEvent) => observe(statementName(event.query), event.queryDurationMillis / 1000, event.level === "error", event.query.queryId);
  if (target.kind === "pglite") return openPGlite(target.dataDir, target.seed, statementLog);
  const pool = new pg.Pool({
    connectionString: target.url,
    max: target.poolSize,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: target.statementTimeoutMs,
    // Client-side bound for when the server cannot even say it timed out (a
    // silent network drop): fail the query, and FencedPgPool discards the connection.
    query_timeout: target.statementTimeoutMs + 5_000,
    idle_in_transaction_session_timeout: 30_000,
    lock_timeout: target.statementTimeoutMs,
    keepAlive: true,
    application_name: "anvil",
  });
  pool.on("error", (err) => log.warn({ err: describe(err) }, "idle database connection failed"));
  pool.on("connect", (client) => {
    client.on("error", (err) => log.warn({ err: describe(err) }, "database connection failed"));
  });
  const fenced = new FencedPgPool(pool);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: fenced as unknown as PostgresPool }), ...(statementLog && { log: statementLog }) });
  const listener = new PgNotificationListener(target.url, log);
  const announcer = new AfterCommitAnnouncer(
    { listen: (channel, onMessage, onGap) => listener.listen(channel, onMessage, onGap), notifyAll: (channels, payloads) => notifyAll(db, channels, payloads) },
    (err) => log.warn({ err: describe(err) }, "cannot NOTIFY; other instances' waiters rely on polling"),
  );
  return {
    kind: "postgres",
    db,
    ping: async () => {
      await sql`/* ping */ select 1`.execute(db);
    },
    listen: (channel, onMessage, onGap) => announcer.listen(channel, onMessage, onGap),
    announce: (announcements) => announcer.announce(announcements),
    poolStats: () => fenced.stats(),
    sessionLock: (name) => new PgSessionLock(target.url, name, log),
    close: async () => {
      await announcer.flushed();
      await listener.close();
      await db.destroy();
    },
  };
}

/**
 * Opens the embedded database. In memory with a `seed` (a tarball of a data
 * directory that initdb made), it starts from a copy of that instead of
 * running initdb, which is most of its start (about 3.5 of 4 s on a quiet
 * machine, a minute at load 20): its own copy, so nothing of one database
 * reaches another.
 */
async function openPGlite(dataDir: string, seed: string | undefined, statementLog: ((event: LogEvent) => void) | undefined): Promise<DatabaseHandle> {
  const { PGlite } = await import("@electric-sql/pglite");
  const inMemory = dataDir === "" || dataDir.startsWith("memory://");
  if (!inMemory) mkdirSync(dataDir, { recursive: true });
  // In memory: a copy of the seed's cluster when there is one.
  // Stryker disable next-line ConditionalExpression: equivalent but for time: without the seed PGlite runs initdb itself, to the same empty cluster
  const inMemoryCluster = () => PGlite.create(seed === undefined ? {} : { loadDataDir: new Blob([readFileSync(seed)]) });
  const pglite = inMemory ? await inMemoryCluster() : await PGlite.create(dataDir);
  // kysely's pool type also admits cursors, which Anvil never uses.
  const lockable = new PGlitePool(pglite);
  const pool = lockable as unknown as PostgresPool;
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), ...(statementLog && { log: statementLog }) });
  // LISTEN runs between transactions, holding the connection lock: issued in
  // the middle of someone's transaction it would share that transaction's fate.
  const exclusive = async <T>(work: () => Promise<T>): Promise<T> => {
    const connection = await lockable.connect();
    try {
      return await work();
    } finally {
      connection.release();
    }
  };
  const announcer = new AfterCommitAnnouncer(
    {
      listen: async (channel, onMessage) => {
        const unlisten = await exclusive(() => pglite.listen(channel, onMessage));
        return () => exclusive(() => unlisten()).catch(() => undefined);
      },
      notifyAll: (channels, payloads) => notifyAll(db, channels, payloads),
    },
    () => undefined,
  );
  return {
    kind: "pglite",
    db,
    ping: async () => {
      await sql`/* ping */ select 1`.execute(db);
    },
    listen: (channel, onMessage, onGap) => announcer.listen(channel, onMessage, onGap),
    announce: (announcements) => announcer.announce(announcements),
    poolStats: () => lockable.stats(),
    sessionLock: () => processLock,
    close: async () => {
      await announcer.flushed();
      await db.destroy();
    },
  };
}

/** One autocommit statement NOTIFYing every (channels[i], payloads[i]): its commit takes the notify lock once for them all. */
async function notifyAll(db: Kysely<Database>, channels: readonly string[], payloads: readonly string[]): Promise<void> {
  await sql`/* notifications.notifyAll */ select pg_notify(c, p) from unnest(${[...channels]}::text[], ${[...payloads]}::text[]) as n (c, p)`.execute(db);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
