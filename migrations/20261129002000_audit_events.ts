import { type Kysely, sql } from "kysely";

/**
 * The audit log: one row per change made through the API and per refused
 * call, scoped by tenant like every other row. Rows are only ever inserted
 * (and removed by retention), so no version column. Indexes serve the
 * newest-first keyset of every filter of ListAuditEvents, the export's
 * oldest-first range, and retention's sweep by time across tenants.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("audit_events")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("id", "uuid", (c) => c.notNull())
    .addColumn("time", sql`timestamptz(3)`, (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("credential_kind", "text", (c) => c.notNull())
    .addColumn("credential_id", "text", (c) => c.notNull())
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("method", "text", (c) => c.notNull())
    .addColumn("protocol", "text", (c) => c.notNull())
    .addColumn("request_id", "text", (c) => c.notNull())
    .addColumn("trace_id", "text", (c) => c.notNull())
    .addColumn("resource_ids", sql`text[]`, (c) => c.notNull())
    .addColumn("outcome", "integer", (c) => c.notNull())
    .addColumn("client_address", "text", (c) => c.notNull())
    .addColumn("user_agent", "text", (c) => c.notNull())
    .addColumn("parameters", "jsonb")
    .addColumn("dropped_count", "bigint", (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint("audit_events_pkey", ["tenant_id", "id"])
    .execute();
  await db.schema.createIndex("audit_events_keyset").on("audit_events").columns(["tenant_id", "time", "id"]).execute();
  await db.schema
    .createIndex("audit_events_by_credential")
    .on("audit_events")
    .columns(["tenant_id", "credential_kind", "credential_id", "time", "id"])
    .execute();
  await db.schema.createIndex("audit_events_by_subject").on("audit_events").columns(["tenant_id", "subject", "time", "id"]).execute();
  await db.schema.createIndex("audit_events_by_method").on("audit_events").columns(["tenant_id", "method", "time", "id"]).execute();
  await db.schema.createIndex("audit_events_by_outcome").on("audit_events").columns(["tenant_id", "outcome", "time", "id"]).execute();
  await sql`create index audit_events_by_resource on audit_events using gin (resource_ids)`.execute(db);
  // Retention deletes the oldest rows of every tenant.
  await db.schema.createIndex("audit_events_by_time").on("audit_events").column("time").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("audit_events").execute();
}
