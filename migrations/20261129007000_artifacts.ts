import { type Kysely, sql } from "kysely";

/**
 * Files that tasks attach to their operations, stored in the database in
 * chunks of fixed size so that neither an upload nor a download (nor a
 * range of one) ever holds a whole file in memory. An artifact row is
 * `uploading` while its chunks arrive and becomes `ready` when the upload
 * ends; only ready artifacts are visible, and one name is unique among the
 * ready ones of an operation. Both tables hang off their operation, so
 * housekeeping deletes them with it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("artifacts")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("id", "uuid", (c) => c.notNull())
    .addColumn("operation_id", "uuid", (c) => c.notNull())
    .addColumn("task_id", "uuid", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("content_type", "text", (c) => c.notNull())
    .addColumn("size_bytes", "bigint", (c) => c.notNull().defaultTo(0))
    // Every chunk but the last holds exactly this many bytes: a range maps to chunks by arithmetic.
    .addColumn("chunk_bytes", "integer", (c) => c.notNull())
    // Hex SHA-256 of the content, set when the upload ends: the strong ETag.
    .addColumn("sha256", "text")
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("create_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("update_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("artifacts_pkey", ["tenant_id", "id"])
    .addForeignKeyConstraint("artifacts_operation_fkey", ["tenant_id", "operation_id"], "operations", ["tenant_id", "id"], (fk) => fk.onDelete("cascade"))
    .execute();
  await sql`create unique index artifacts_ready_name on artifacts (tenant_id, operation_id, name) where state = 'ready'`.execute(db);
  // Housekeeping finds uploads abandoned mid-way (a gateway that died during one).
  await sql`create index artifacts_uploading on artifacts (update_time) where state = 'uploading'`.execute(db);

  await db.schema
    .createTable("artifact_chunks")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("artifact_id", "uuid", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("data", "bytea", (c) => c.notNull())
    .addPrimaryKeyConstraint("artifact_chunks_pkey", ["tenant_id", "artifact_id", "seq"])
    .addForeignKeyConstraint("artifact_chunks_artifact_fkey", ["tenant_id", "artifact_id"], "artifacts", ["tenant_id", "id"], (fk) => fk.onDelete("cascade"))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("artifact_chunks").execute();
  await db.schema.dropTable("artifacts").execute();
}
