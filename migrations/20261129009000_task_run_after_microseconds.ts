import { type Kysely, sql } from "kysely";

/**
 * A task's run_after at the database clock's own precision. It was
 * timestamptz(3), like the times clients page by, but it is never a page
 * key: it is written from now() and compared with now(). Rounded to the
 * millisecond, a task requeued or inserted "ready now" could be stored up to
 * half a millisecond in the future, and a claim starting within that half
 * millisecond skipped it (a worker then waited for its next poll). Widening
 * the precision rewrites no rows.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table tasks alter column run_after type timestamptz`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table tasks alter column run_after type timestamptz(3)`.execute(db);
}
