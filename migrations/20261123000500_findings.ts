import { type Kysely, sql } from "kysely";

/**
 * Findings, scoped by tenant. Each list order has an index that serves its
 * keyset walk in both directions (tenant first, then the order's columns and
 * id), which also serves the filters on those columns; the fingerprint is
 * unique per tenant so that a re-reported finding is updated, not duplicated.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("findings")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("id", "uuid", (c) => c.notNull())
    // Byte-wise collation: prefix filters can use the index, and the
    // file_path order is the same on every database and in page tokens.
    .addColumn("file_path", sql`text collate "C"`, (c) => c.notNull())
    .addColumn("line", "integer", (c) => c.notNull())
    .addColumn("end_line", "integer", (c) => c.notNull())
    // 1 (info) … 5 (critical), so that severity orders and compares as a number.
    .addColumn("severity", "smallint", (c) => c.notNull())
    .addColumn("issue_type", "text", (c) => c.notNull())
    .addColumn("rule_id", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("message", "text", (c) => c.notNull())
    .addColumn("suggestion", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("fingerprint", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    // Millisecond precision: timestamps round-trip exactly through JS Dates,
    // which keyset page tokens rely on.
    .addColumn("first_seen_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("last_seen_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("resolve_time", sql`timestamptz(3)`)
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("create_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("update_time", sql`timestamptz(3)`, (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("findings_pkey", ["tenant_id", "id"])
    .addUniqueConstraint("findings_fingerprint_key", ["tenant_id", "fingerprint"])
    .addCheckConstraint("findings_severity_check", sql`severity between 1 and 5`)
    .addCheckConstraint("findings_status_check", sql`status in ('open', 'acknowledged', 'resolved', 'false_positive')`)
    .addCheckConstraint("findings_lines_check", sql`line >= 1 and end_line >= line`)
    .execute();
  const index = (name: string, columns: string[]) => db.schema.createIndex(name).on("findings").columns(columns).execute();
  // Order `last_seen_time` (the default) and the since/until filters.
  await index("findings_by_last_seen", ["tenant_id", "last_seen_time", "id"]);
  // Order `first_seen_time` and the trend's new findings per day.
  await index("findings_by_first_seen", ["tenant_id", "first_seen_time", "id"]);
  // Order `severity` and the min_severity filter.
  await index("findings_by_severity", ["tenant_id", "severity", "last_seen_time", "id"]);
  // Order `file_path`, the exact and prefix filters, and alert correlation.
  await index("findings_by_file", ["tenant_id", "file_path", "line", "id"]);
  // The status filter under the default order (the triage queue).
  await index("findings_by_status", ["tenant_id", "status", "last_seen_time", "id"]);
  // The trend's resolved findings per day.
  await sql`create index findings_by_resolve_time on findings (tenant_id, resolve_time) where resolve_time is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("findings").execute();
}
