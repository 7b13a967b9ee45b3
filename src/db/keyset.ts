import { type Expression, type ExpressionBuilder, type SqlBool, sql } from "kysely";

/** One column of a sort order. */
export interface SortKey {
  readonly column: string;
  readonly direction: "asc" | "desc";
}

/**
 * The condition "comes after this row" for a multi-column sort, expanded as
 * (a > x) OR (a = x AND b > y) OR … so that mixed directions work and
 * PostgreSQL can still walk the matching index. Values are bound parameters.
 */
export function afterKeyset<DB, TB extends keyof DB>(
  eb: ExpressionBuilder<DB, TB>,
  keys: readonly SortKey[],
  values: readonly unknown[],
): Expression<SqlBool> {
  const branches = keys.map((key, i) => {
    const equalities = keys.slice(0, i).map((k, j) => sql<SqlBool>`${sql.ref(k.column)} = ${values[j]}`);
    const step = sql<SqlBool>`${sql.ref(key.column)} ${sql.raw(key.direction === "asc" ? ">" : "<")} ${values[i]}`;
    return eb.and([...equalities, step]);
  });
  return eb.or(branches);
}
