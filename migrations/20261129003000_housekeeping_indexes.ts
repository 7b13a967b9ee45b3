import { type Kysely, sql } from "kysely";

/**
 * Indexes for ListOperations' filters and for the housekeeping sweeper.
 * ListOperations pages newest first within a tenant, optionally by state,
 * kind or resource (operations_resource exists already): each filter gets an
 * index in that order, so a page reads its rows and stops, however many
 * operations the tenant has. The sweeper finds ended operations and old
 * idempotency keys across tenants by age.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex("operations_state").on("operations").columns(["tenant_id", "state", "create_time desc", "id desc"]).execute();
  await db.schema.createIndex("operations_kind").on("operations").columns(["tenant_id", "kind", "create_time desc", "id desc"]).execute();
  // Only ended operations have an end time: the index holds what retention may delete.
  await sql`create index operations_ended on operations (end_time) where end_time is not null`.execute(db);
  await db.schema.createIndex("idempotency_keys_create_time").on("idempotency_keys").column("create_time").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("idempotency_keys_create_time").execute();
  await db.schema.dropIndex("operations_ended").execute();
  await db.schema.dropIndex("operations_kind").execute();
  await db.schema.dropIndex("operations_state").execute();
}
