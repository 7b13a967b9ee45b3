import { type Kysely, Migrator } from "kysely";
import { migrations } from "../../migrations/index.js";

function migrator(db: Kysely<any>): Migrator {
  return new Migrator({ db, provider: { getMigrations: async () => migrations } });
}

/**
 * Applies every pending migration from `migrations/`. kysely's Migrator takes
 * a PostgreSQL advisory lock, so instances starting together apply each
 * migration once; unlike the Migrator, this throws when one fails.
 */
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  const { error, results = [] } = await migrator(db).migrateToLatest();
  if (error) {
    const failed = results.find((r) => r.status === "Error")?.migrationName ?? "(before any migration ran)";
    throw new Error(`migration ${failed} failed`, { cause: error });
  }
  return results.filter((r) => r.status === "Success").map((r) => r.migrationName);
}

/** Whether every known migration has been applied (readiness checks use it). */
export async function hasPendingMigrations(db: Kysely<any>): Promise<boolean> {
  const all = await migrator(db).getMigrations();
  return all.some((m) => m.executedAt === undefined);
}
