import { type Kysely, sql } from "kysely";

/**
 * Long-running operations, their append-only events, and the task queue.
 * The tables themselves are the queue (claimed with FOR UPDATE SKIP LOCKED),
 * so enqueueing joins the caller's transaction and there is one source of
 * truth on PostgreSQL and on the embedded database alike.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("operations")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("id", "uuid", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("resource", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("progress", "double precision", (c) => c.notNull().defaultTo(0))
    .addColumn("stage", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("message", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("attempt", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("result", "jsonb")
    .addColumn("error", "jsonb")
    .addColumn("cancel_requested", "boolean", (c) => c.notNull().defaultTo(false))
    // The sequence of the latest event: appending bumps it under the row
    // lock, which is what keeps sequences gapless and ordered.
    .addColumn("last_sequence", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("create_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("update_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("start_time", sql`timestamptz(3)`)
    .addColumn("end_time", sql`timestamptz(3)`)
    .addPrimaryKeyConstraint("operations_pkey", ["tenant_id", "id"])
    .execute();
  // ListOperations pages newest first, optionally within one resource.
  await db.schema.createIndex("operations_keyset").on("operations").columns(["tenant_id", "create_time desc", "id desc"]).execute();
  await db.schema
    .createIndex("operations_resource")
    .on("operations")
    .columns(["tenant_id", "resource", "create_time desc", "id desc"])
    .execute();

  await db.schema
    .createTable("operation_events")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("operation_id", "uuid", (c) => c.notNull())
    .addColumn("sequence", "integer", (c) => c.notNull())
    .addColumn("time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("step", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("payload", "jsonb", (c) => c.notNull())
    .addPrimaryKeyConstraint("operation_events_pkey", ["tenant_id", "operation_id", "sequence"])
    .addForeignKeyConstraint("operation_events_operation_fkey", ["tenant_id", "operation_id"], "operations", ["tenant_id", "id"], (fk) =>
      fk.onDelete("cascade"),
    )
    .execute();

  await db.schema
    .createTable("tasks")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("id", "uuid", (c) => c.notNull())
    .addColumn("operation_id", "uuid", (c) => c.notNull())
    .addColumn("step", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("input", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'`))
    // blocked (waiting for depends_on) → queued → leased → done.
    .addColumn("state", "text", (c) => c.notNull())
    // For done tasks: succeeded, failed or cancelled.
    .addColumn("outcome", "text")
    .addColumn("depends_on", sql`uuid[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("run_after", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("attempt", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("max_attempts", "integer", (c) => c.notNull())
    .addColumn("progress", "double precision", (c) => c.notNull().defaultTo(0))
    .addColumn("result", "jsonb")
    .addColumn("lease_token", "uuid")
    .addColumn("lease_expires_at", sql`timestamptz(3)`)
    .addColumn("lease_ms", "integer", (c) => c.notNull().defaultTo(30_000))
    .addColumn("worker_id", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("create_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("update_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("tasks_pkey", ["tenant_id", "id"])
    .addForeignKeyConstraint("tasks_operation_fkey", ["tenant_id", "operation_id"], "operations", ["tenant_id", "id"], (fk) =>
      fk.onDelete("cascade"),
    )
    .execute();
  // What ClaimTask scans: ready tasks by kind and time, and expired leases.
  await sql`create index tasks_ready on tasks (tenant_id, kind, run_after) where state = 'queued'`.execute(db);
  await sql`create index tasks_leased on tasks (tenant_id, lease_expires_at) where state = 'leased'`.execute(db);
  await db.schema.createIndex("tasks_operation").on("tasks").columns(["tenant_id", "operation_id"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("tasks").execute();
  await db.schema.dropTable("operation_events").execute();
  await db.schema.dropTable("operations").execute();
}
