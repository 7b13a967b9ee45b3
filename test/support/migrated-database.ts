import type { Kysely } from "kysely";
import pino from "pino";
import { afterAll, beforeAll } from "vitest";
import { type DatabaseHandle, openDatabase } from "../../src/db/database.js";
import { migrateToLatest } from "../../src/db/migrator.js";
import type { Database } from "../../src/db/schema.js";
import { createTestDatabase, type DatabaseKind, type TestDatabase } from "./databases.js";

/** A suite's own database, migrated, as migratedDatabase's hooks opened it. */
export interface MigratedDatabase {
  readonly db: Kysely<Database>;
  readonly handle: DatabaseHandle;
  /** Connection string (postgres) or undefined (embedded). */
  readonly url: string | undefined;
}

/**
 * For suites that call repositories straight, without a gateway: registers
 * hooks that open a fresh database of `kind` before the suite (the embedded
 * one from the run's initdb seed, test/support/pglite-seed.ts), migrate it,
 * and close and drop it after. Read its fields inside tests and hooks.
 */
export function migratedDatabase(kind: DatabaseKind, statementTimeoutMs = 10_000): MigratedDatabase {
  let database: TestDatabase | undefined;
  let handle: DatabaseHandle | undefined;
  beforeAll(async () => {
    database = await createTestDatabase(kind);
    handle = await openDatabase(
      database.url
        ? { kind: "postgres", url: database.url, poolSize: 4, statementTimeoutMs }
        : { kind: "pglite", dataDir: "memory://", seed: process.env.ANVIL_PGLITE_SEED },
      pino({ level: "silent" }),
    );
    await migrateToLatest(handle.db);
  });
  afterAll(async () => {
    await handle?.close();
    await database?.drop();
  });
  const opened = () => {
    if (handle === undefined) throw new Error("the suite's database is opened in beforeAll");
    return handle;
  };
  return {
    get db() {
      return opened().db;
    },
    get handle() {
      return opened();
    },
    get url() {
      return database?.url;
    },
  };
}
