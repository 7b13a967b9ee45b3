import { type Kysely, sql } from "kysely";

/** Users, scoped by tenant; e-mail unique per tenant regardless of case. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("users")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("id", "uuid", (c) => c.notNull())
    .addColumn("email", "text", (c) => c.notNull())
    .addColumn("display_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("roles", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    // Millisecond precision: timestamps round-trip exactly through JS Dates,
    // which keyset page tokens rely on.
    .addColumn("create_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("update_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("users_pkey", ["tenant_id", "id"])
    .execute();
  await sql`create unique index users_email_key on users (tenant_id, lower(email))`.execute(db);
  await db.schema.createIndex("users_keyset").on("users").columns(["tenant_id", "create_time", "id"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("users").execute();
}
