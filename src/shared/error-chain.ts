/**
 * An error and every cause under it, one per line, for an operator: the
 * wrapper says what failed ("migration … failed"), the causes say why
 * (database "x" does not exist, connect ECONNREFUSED, password
 * authentication failed). SQLSTATE and errno codes are shown where the
 * driver gives them; an AggregateError (Node's connect tries every address
 * of a host) lists each attempt. Bounded, so a cycle of causes cannot loop.
 *
 * @example
 *   describeErrorChain(new Error("migration failed", { cause: pgError }))
 *   // migration failed
 *   //   caused by: database "anvil" does not exist [3D000]
 */
export function describeErrorChain(err: unknown): string {
  const lines: string[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown, depth: number, prefix: string) => {
    if (depth > 8 || seen.has(e)) return;
    seen.add(e);
    lines.push(`${"  ".repeat(depth)}${prefix}${summary(e)}`);
    if (e instanceof AggregateError) for (const inner of e.errors) visit(inner, depth + 1, "attempt: ");
    if (e instanceof Error && e.cause !== undefined) visit(e.cause, depth + 1, "caused by: ");
  };
  visit(err, 0, "");
  return lines.join("\n");
}

function summary(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e as { code?: unknown }).code;
  const message = e.message || e.name;
  return typeof code === "string" && !message.includes(code) ? `${message} [${code}]` : message;
}
