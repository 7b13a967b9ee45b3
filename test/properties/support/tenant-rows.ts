import { sql } from "kysely";
import type { TestServer } from "../../support/server.js";

/** Every row a tenant owns, by table, in a stable order: what "changed nothing" is compared on. */
export type TenantRows = Record<string, unknown[]>;

/**
 * Reads every row of `tenant` from every table with a `tenant_id` column,
 * found in the catalogue rather than listed here, so that a table added
 * later is compared too.
 */
export async function tenantRows(server: TestServer, tenant: string): Promise<TenantRows> {
  const db = server.app.database.db;
  const tables = await sql<{ table_name: string }>`
    select table_name from information_schema.columns
    where column_name = 'tenant_id' and table_schema = current_schema()
    order by table_name`.execute(db);
  const out: TenantRows = {};
  for (const { table_name } of tables.rows) {
    const rows = await sql<Record<string, unknown>>`select * from ${sql.table(table_name)} where tenant_id = ${tenant}`.execute(db);
    out[table_name] = rows.rows.map((r) => JSON.parse(JSON.stringify(r)) as unknown).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  }
  return out;
}

/** Number of rows per table of a tenant. */
export function rowCounts(rows: TenantRows): Record<string, number> {
  return Object.fromEntries(Object.entries(rows).map(([t, r]) => [t, r.length]));
}
