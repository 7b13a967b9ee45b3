import { type Kysely, sql } from "kysely";

/**
 * IPAs, scoped by tenant. No foreign keys to workflows or agents: a draft
 * IPA may name ones that do not exist (yet, or any more); deploy checks them.
 * What must be fast is the reverse question a delete, archive or disable asks
 * — "which deployed IPAs use this?" — so `agent_ids` repeats the bound agent
 * ids as an array under a GIN index, and deployed IPAs are indexed by
 * workflow; both indexes cover deployed IPAs only.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("ipas")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("id", "uuid", (c) => c.notNull())
    .addColumn("display_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("workflow_id", "uuid", (c) => c.notNull())
    .addColumn("agent_bindings", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("agent_ids", sql`uuid[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("deployed_revision", "integer")
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("create_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("update_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("ipas_pkey", ["tenant_id", "id"])
    .execute();
  await db.schema.createIndex("ipas_keyset").on("ipas").columns(["tenant_id", "create_time", "id"]).execute();
  await sql`create index ipas_deployed_workflow on ipas (tenant_id, workflow_id) where state = 'deployed'`.execute(db);
  await sql`create index ipas_deployed_agents on ipas using gin (agent_ids) where state = 'deployed'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("ipas").execute();
}
