import { randomBytes } from "node:crypto";
import pg from "pg";

/** The databases a suite runs against: always the embedded one, plus PostgreSQL when TEST_DATABASE_URL is set. */
export type DatabaseKind = "pglite" | "postgres";

export const databaseKinds: DatabaseKind[] = process.env.TEST_DATABASE_URL ? ["pglite", "postgres"] : ["pglite"];

/** A fresh, empty database for one test server, dropped by `drop()`. */
export interface TestDatabase {
  readonly kind: DatabaseKind;
  /** Connection string (postgres) or undefined (embedded, in memory). */
  readonly url: string | undefined;
  drop(): Promise<void>;
}

/**
 * Creates a database of its own for one server: a new in-memory PGlite, or a
 * new database on the TEST_DATABASE_URL server (or `adminUrl`'s) named anvil_test_<random>.
 */
export async function createTestDatabase(kind: DatabaseKind, adminUrl = process.env.TEST_DATABASE_URL): Promise<TestDatabase> {
  if (kind === "pglite") return { kind, url: undefined, drop: async () => {} };
  if (!adminUrl) throw new Error("TEST_DATABASE_URL is not set");
  const name = `anvil_test_${randomBytes(6).toString("hex")}`;
  await admin(adminUrl, `create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    kind,
    url: url.toString(),
    drop: () => admin(adminUrl, `drop database if exists ${name} with (force)`),
  };
}

async function admin(url: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
