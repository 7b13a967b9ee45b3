import type { PGlite } from "@electric-sql/pglite";
import type { PoolStats } from "./pool-stats.js";

/**
 * Presents an embedded PGlite database as the `pg`-style pool that kysely's
 * PostgresDialect expects. PGlite has exactly one connection, so `connect()`
 * is a FIFO lock: a request's transaction holds the connection from BEGIN to
 * COMMIT and the next one waits — transactions queue, they never interleave.
 */
export class PGlitePool {
  readonly #db: PGlite;
  #tail: Promise<void> = Promise.resolve();
  #ended = false;
  #waiting = 0;
  #held = false;

  constructor(db: PGlite) {
    this.#db = db;
  }

  /** Waits for the single connection and returns it; call `release()` when done. */
  async connect(): Promise<PGliteClient> {
    if (this.#ended) throw new Error("embedded database is closed");
    let release!: () => void;
    const previous = this.#tail;
    this.#tail = new Promise<void>((resolve) => (release = resolve));
    this.#waiting++;
    try {
      await previous;
    } finally {
      this.#waiting--;
    }
    this.#held = true;
    let released = false;
    return {
      query: (sql, parameters) => this.#query(sql, parameters),
      release: () => {
        if (released) return;
        released = true;
        this.#held = false;
        release();
      },
    };
  }

  /** The one connection, whether it is free, and how many wait for it (for the metrics). */
  stats(): PoolStats {
    return { total: 1, idle: this.#held ? 0 : 1, waiting: this.#waiting };
  }

  async end(): Promise<void> {
    this.#ended = true;
    await this.#tail;
    await this.#db.close();
  }

  async #query(sql: string, parameters: readonly unknown[] = []): Promise<QueryResult> {
    const result = await this.#db.query<Record<string, unknown>>(sql, parameters as unknown[]);
    return {
      // kysely reads `command` to decide whether rowCount means affected rows.
      command: leadingKeyword(sql),
      rowCount: result.affectedRows ?? result.rows.length,
      rows: result.rows,
    };
  }
}

/** The slice of a `pg` pool client that kysely uses. */
export interface PGliteClient {
  query(sql: string, parameters?: readonly unknown[]): Promise<QueryResult>;
  release(): void;
}

interface QueryResult {
  command: "DELETE" | "INSERT" | "MERGE" | "SELECT" | "UPDATE";
  rowCount: number;
  rows: Record<string, unknown>[];
}

function leadingKeyword(sql: string): QueryResult["command"] {
  // Past any leading comments: repositories name their SQL text with one (statement-name.ts).
  // A line comment ends at a line feed or a carriage return (PostgreSQL's lexer), or with the text.
  const keyword = (/^(?:\s|\/\*[\s\S]*?\*\/|--[^\n\r]*(?:[\n\r]|$))*([a-z]+)/i.exec(sql)?.[1] ?? "").toUpperCase();
  if (keyword === "INSERT" || keyword === "UPDATE" || keyword === "DELETE" || keyword === "MERGE") return keyword;
  // A data-modifying CTE reports affected rows like the statement it wraps.
  return keyword === "WITH" ? "UPDATE" : "SELECT";
}
