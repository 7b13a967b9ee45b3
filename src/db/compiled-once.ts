import { type CompiledQuery, createQueryId, type Kysely, type QueryResult } from "kysely";

/**
 * Runs a statement compiled once (at start-up, or on first use) with
 * `parameters` in place of those it was built with. It keeps its query
 * tree, so metrics and traces name it (`select api_keys`) as any built
 * statement, where `CompiledQuery.raw` of its text would be SQL text to
 * them. The plugins of `db` are shown it first, as kysely shows them every
 * statement it builds — they observe it (a tracing plugin files it under
 * its call, TouchedIds notes a write) but cannot change it: its SQL is fixed.
 *
 * @example
 *   const find = db.selectFrom("webhooks").selectAll().where("id", "=", "").compile();
 *   const { rows } = await runCompiled(db, find, [id]);
 */
export function runCompiled<DB, R>(db: Kysely<DB>, compiled: CompiledQuery<R>, parameters: readonly unknown[]): Promise<QueryResult<R>> {
  const queryId = createQueryId();
  const executor = db.getExecutor();
  executor.transformQuery(compiled.query, queryId);
  return db.executeQuery({ ...compiled, parameters, queryId });
}
