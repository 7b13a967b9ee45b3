import { type Kysely, sql } from "kysely";

/**
 * API keys, scoped by tenant, storing only the SHA-256 of each secret. Ids
 * are UUIDs unique across tenants: the secret embeds the id, and
 * authentication finds the key by it before it knows the tenant.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("api_keys")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("id", "uuid", (c) => c.notNull())
    .addColumn("display_name", "text", (c) => c.notNull())
    .addColumn("roles", sql`text[]`, (c) => c.notNull())
    .addColumn("tier", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("secret_hash", "bytea", (c) => c.notNull())
    .addColumn("creator", "text", (c) => c.notNull())
    .addColumn("expire_time", sql`timestamptz(3)`)
    .addColumn("last_used_time", sql`timestamptz(3)`)
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("create_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("update_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("api_keys_pkey", ["tenant_id", "id"])
    .execute();
  await db.schema.createIndex("api_keys_id_key").on("api_keys").column("id").unique().execute();
  await db.schema.createIndex("api_keys_keyset").on("api_keys").columns(["tenant_id", "create_time", "id"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("api_keys").execute();
}
