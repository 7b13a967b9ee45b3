import { randomBytes } from "node:crypto";
import pg from "pg";

/** The databases a suite runs against: always the embedded one, plus PostgreSQL when TEST_DATABASE_URL is set. */
export type DatabaseKind = "pglite" | "postgres";

/**
 * TEST_ONE_DATABASE=1 (set by the mutation-testing config) keeps one of them:
 * PostgreSQL when it is there, else the embedded one. Each mutant reruns the
 * suites that cover it, and a second database would double that for the same
 * code paths.
 */
export const databaseKinds: DatabaseKind[] = oneDatabase(
  process.env.TEST_DATABASE_URL ? ["pglite", "postgres"] : ["pglite"],
);

function oneDatabase(kinds: DatabaseKind[]): DatabaseKind[] {
  return process.env.TEST_ONE_DATABASE === "1" ? kinds.slice(-1) : kinds;
}

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
