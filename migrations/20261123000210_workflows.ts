import { type Kysely, sql } from "kysely";

/**
 * Workflows, scoped by tenant, and every revision each one went through.
 * A revision row is written in the same transaction as the change that makes
 * it, so the history has no gaps; deleting a workflow deletes its history.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("workflows")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("id", "uuid", (c) => c.notNull())
    .addColumn("display_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("steps", "jsonb", (c) => c.notNull().defaultTo(sql`'[]'`))
    .addColumn("state", "text", (c) => c.notNull())
    // The version is the revision: both start at 1 and every update bumps them.
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("create_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("update_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("workflows_pkey", ["tenant_id", "id"])
    .execute();
  await db.schema.createIndex("workflows_keyset").on("workflows").columns(["tenant_id", "create_time", "id"]).execute();

  await db.schema
    .createTable("workflow_revisions")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("workflow_id", "uuid", (c) => c.notNull())
    .addColumn("revision", "integer", (c) => c.notNull())
    .addColumn("display_name", "text", (c) => c.notNull())
    .addColumn("description", "text", (c) => c.notNull())
    .addColumn("steps", "jsonb", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("create_time", sql`timestamptz(3)`, (c) => c.notNull())
    .addColumn("update_time", sql`timestamptz(3)`, (c) => c.notNull())
    // The primary key doubles as the keyset index of ListWorkflowRevisions
    // and makes a duplicate revision number impossible.
    .addPrimaryKeyConstraint("workflow_revisions_pkey", ["tenant_id", "workflow_id", "revision"])
    .addForeignKeyConstraint("workflow_revisions_workflow_fkey", ["tenant_id", "workflow_id"], "workflows", ["tenant_id", "id"], (fk) =>
      fk.onDelete("cascade"),
    )
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("workflow_revisions").execute();
  await db.schema.dropTable("workflows").execute();
}
