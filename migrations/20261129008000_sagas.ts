import type { Kysely } from "kysely";

/**
 * Sagas: a step's task carries the compensation its workflow declared
 * (`compensation`, null: none), a compensation task names the task it undoes
 * (`compensates`), and an operation that compensated keeps the record of its
 * compensations (`compensations`, null: it never compensated).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("tasks").addColumn("compensation", "jsonb").addColumn("compensates", "uuid").execute();
  await db.schema.alterTable("operations").addColumn("compensations", "jsonb").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("operations").dropColumn("compensations").execute();
  await db.schema.alterTable("tasks").dropColumn("compensates").dropColumn("compensation").execute();
}
