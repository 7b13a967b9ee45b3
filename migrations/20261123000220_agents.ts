import { type Kysely, sql } from "kysely";

/** Agents, scoped by tenant. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("agents")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("id", "uuid", (c) => c.notNull())
    .addColumn("display_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("instructions", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("tools", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("config", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("create_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("update_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("agents_pkey", ["tenant_id", "id"])
    .execute();
  await db.schema.createIndex("agents_keyset").on("agents").columns(["tenant_id", "create_time", "id"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("agents").execute();
}
