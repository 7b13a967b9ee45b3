import { type Kysely, Migrator, sql } from "kysely";
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
  // Stryker disable next-line ArrayDeclaration: a made-up result has no status, so no migration is named failed either way
  const { error, results = [] } = await migrator(db).migrateToLatest();
  if (error) {
    const failed = results.find((r) => r.status === "Error")?.migrationName ?? "(before any migration ran)";
    throw new Error(`migration ${failed} failed`, { cause: error });
  }
  // Stryker disable next-line MethodExpression,ConditionalExpression: without an error every result is a success; the filter says which count
  return results.filter((r) => r.status === "Success").map((r) => r.migrationName);
}

/** Whether every known migration has been applied. */
export async function hasPendingMigrations(db: Kysely<any>): Promise<boolean> {
  const all = await migrator(db).getMigrations();
  return all.some((m) => m.executedAt === undefined);
}

/**
 * Why the schema is not the one this build expects, or undefined when it is:
 * every migration this build knows applied, and none it does not know (a
 * newer build migrated the database, or an old one rolled it back). Reads
 * kysely's own table, so a database never migrated counts as behind.
 */
export async function schemaMismatch(db: Kysely<any>): Promise<string | undefined> {
  const exists = await sql<{ found: string | null }>`/* migrator.migrated */ select to_regclass('kysely_migration')::text as found`.execute(db);
  const applied = new Set(
    // Stryker disable next-line OptionalChaining,ArrayDeclaration: the select always returns its one row; and a database never migrated is behind on every known migration, which is told first
    exists.rows[0]?.found ? (await db.selectFrom("kysely_migration").select("name").execute()).map((r: { name: string }) => r.name) : [],
  );
  const known = Object.keys(migrations);
  const pending = known.filter((name) => !applied.has(name));
  const unknown = [...applied].filter((name) => !(name in migrations)).sort();
  if (pending.length > 0) return `schema is behind: migration ${pending.join(", ")} not applied`;
  if (unknown.length > 0) return `schema is ahead: migration ${unknown.join(", ")} unknown to this build`;
  return undefined;
}
