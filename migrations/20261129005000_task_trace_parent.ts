import type { Kysely } from "kysely";

/**
 * The W3C `traceparent` of the call that started a task's operation, handed
 * to the worker that claims it so that the worker's spans join that call's
 * trace. Null when tracing was off.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("tasks").addColumn("trace_parent", "text").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("tasks").dropColumn("trace_parent").execute();
}
