import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { createTestDatabase, type TestDatabase } from "./databases.js";
import { startPrivatePostgres } from "./private-postgres.js";

/**
 * A fresh PostgreSQL database for a suite that runs on PostgreSQL only (a
 * browser suite, a memory bound that PGlite inside the gateway would void):
 * on the TEST_DATABASE_URL server when set, else on a private cluster
 * started for the suite, so the suite runs either way instead of skipping.
 */
export async function suitePostgres(): Promise<{ database: TestDatabase; close(): Promise<void> }> {
  if (process.env.TEST_DATABASE_URL) {
    const database = await createTestDatabase("postgres");
    return { database, close: () => database.drop() };
  }
  const cluster = await startPrivatePostgres();
  const database = await createTestDatabase("postgres", cluster.url);
  return {
    database,
    close: async () => {
      await database.drop();
      await cluster.destroy();
    },
  };
}

/** A describe block's PostgreSQL database and a client on it for the tests' own statements. */
export interface PostgresWithAdmin {
  readonly url: string;
  readonly admin: pg.Client;
}

/**
 * Gives the enclosing describe block a PostgreSQL database of its own
 * (suitePostgres) and an admin client on it: `ready` gets both in beforeAll;
 * both are closed in afterAll, after the afterAll hooks registered later
 * (vitest runs them last-registered first). With `when` false nothing is
 * started: a block whose tests all run on PostgreSQL only, on a PGlite run.
 */
export function postgresWithAdmin(ready: (db: PostgresWithAdmin) => void, when = true): void {
  let postgres: Awaited<ReturnType<typeof suitePostgres>> | undefined;
  let admin: pg.Client | undefined;
  beforeAll(async () => {
    if (!when) return;
    postgres = await suitePostgres();
    const url = postgres.database.url!;
    admin = new pg.Client({ connectionString: url });
    await admin.connect();
    ready({ url, admin });
  });
  afterAll(async () => {
    await admin?.end();
    await postgres?.close();
  });
}
