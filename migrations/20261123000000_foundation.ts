import { type Kysely, sql } from "kysely";

/**
 * Shared infrastructure: settings every instance shares (the page-token key
 * is created here, once, so all instances sign and verify alike) and the
 * idempotency keys of retried creates.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("anvil_settings")
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("value", "text", (c) => c.notNull())
    .execute();
  await sql`insert into anvil_settings (name, value)
    values ('page_token_key', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))`.execute(db);

  await db.schema
    .createTable("idempotency_keys")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("request_id", "uuid", (c) => c.notNull())
    .addColumn("operation", "text", (c) => c.notNull())
    .addColumn("request_hash", "text", (c) => c.notNull())
    .addColumn("response", "jsonb")
    .addColumn("create_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("idempotency_keys_pkey", ["tenant_id", "request_id"])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("idempotency_keys").execute();
  await db.schema.dropTable("anvil_settings").execute();
}
