import { type Kysely, sql } from "kysely";

/**
 * Webhook endpoints, scoped by tenant. Ids are UUIDs unique across tenants:
 * a delivery to `/hooks/{id}` finds its endpoint before it knows the tenant.
 * The signing key is stored as is (a signature check recomputes the HMAC
 * with it); delivery answers live in `idempotency_keys`.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("webhooks")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("id", "uuid", (c) => c.notNull())
    .addColumn("display_name", "text", (c) => c.notNull())
    .addColumn("target_kind", "text", (c) => c.notNull())
    .addColumn("target_id", "uuid")
    .addColumn("max_results", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("signing_key", "bytea", (c) => c.notNull())
    .addColumn("creator", "text", (c) => c.notNull())
    .addColumn("creator_roles", sql`text[]`, (c) => c.notNull())
    .addColumn("creator_tier", "text", (c) => c.notNull())
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("create_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("update_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("webhooks_pkey", ["tenant_id", "id"])
    .execute();
  await db.schema.createIndex("webhooks_id_key").on("webhooks").column("id").unique().execute();
  await db.schema.createIndex("webhooks_keyset").on("webhooks").columns(["tenant_id", "create_time", "id"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("webhooks").execute();
}
