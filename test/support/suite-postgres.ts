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
