import { type CompiledQuery, createQueryId } from "kysely";

/**
 * A statement compiled once (at start-up, or on first use), to be run with
 * `parameters` in place of those it was built with. It keeps its query tree,
 * so metrics and traces name it (`select api_keys`) as any built statement,
 * where `CompiledQuery.raw` of its text would be SQL text to them.
 *
 * @example
 *   const find = db.selectFrom("webhooks").selectAll().where("id", "=", "").compile();
 *   const { rows } = await db.executeQuery(withParameters(find, [id]));
 */
export function withParameters<R>(compiled: CompiledQuery<R>, parameters: readonly unknown[]): CompiledQuery<R> {
  return { ...compiled, parameters, queryId: createQueryId() };
}
