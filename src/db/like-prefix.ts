/**
 * A LIKE pattern matching every string that starts with `prefix`, with the
 * pattern characters of the prefix itself (`%`, `_` and the escape `\`)
 * escaped — so a client's prefix is matched as data and `%` cannot widen a
 * filter. Bind the result as a parameter; PostgreSQL's default LIKE escape
 * character is the backslash.
 */
export function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
