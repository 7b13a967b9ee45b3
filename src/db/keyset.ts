import { type Expression, type ExpressionBuilder, type SqlBool, sql } from "kysely";

/** One column of a sort order. */
export interface SortKey {
  readonly column: string;
  readonly direction: "asc" | "desc";
}

/**
 * The condition "comes after this row" for a multi-column sort. When every
 * key sorts the same way it is a row comparison, `(a, b) > (x, y)`, which
 * PostgreSQL turns into one index range scan. Mixed directions cannot be a
 * row comparison, so they expand to (a > x) OR (a = x AND b < y) OR …, with
 * `a >= x` (or `<=`) repeated in front so the index still bounds the scan by
 * its first key instead of filtering every earlier row. Values are bound
 * parameters, never SQL.
 */
export function afterKeyset<DB, TB extends keyof DB>(
  eb: ExpressionBuilder<DB, TB>,
  keys: readonly SortKey[],
  values: readonly unknown[],
): Expression<SqlBool> {
  const first = keys[0];
  if (first === undefined) return sql<SqlBool>`true`;
  const op = (k: SortKey) => sql.raw(k.direction === "asc" ? ">" : "<");
  // The expanded form below returns the same rows for one direction too; only
  // its plan is worse (test/db-pool-edges.test.ts reads the plan).
  if (keys.every((k) => k.direction === first.direction)) {
    const columns = sql.join(keys.map((k) => sql.ref(k.column)));
    const params = sql.join(keys.map((_, i) => values[i]));
    return sql<SqlBool>`(${columns}) ${op(first)} (${params})`;
  }
  const branches = keys.map((key, i) => {
    const equalities = keys.slice(0, i).map((k, j) => sql<SqlBool>`${sql.ref(k.column)} = ${values[j]}`);
    return eb.and([...equalities, sql<SqlBool>`${sql.ref(key.column)} ${op(key)} ${values[i]}`]);
  });
  const bound = sql<SqlBool>`${sql.ref(first.column)} ${sql.raw(first.direction === "asc" ? ">=" : "<=")} ${values[0]}`;
  return eb.and([bound, eb.or(branches)]);
}
