import type {
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryId,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from "kysely";

const writes = new Set(["InsertQueryNode", "UpdateQueryNode", "DeleteQueryNode"]);

/**
 * Collects the `id` of every row a transaction's inserts, updates and
 * deletes return: the resources a change touched, for its audit event,
 * without any repository reporting them. (Writes that return no `id` add
 * nothing; the request's own ids are recorded besides.)
 */
export class TouchedIds implements KyselyPlugin {
  readonly ids = new Set<string>();
  readonly #writeQueries = new WeakSet<QueryId>();

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    if (writes.has(args.node.kind)) this.#writeQueries.add(args.queryId);
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    if (this.#writeQueries.has(args.queryId)) {
      for (const row of args.result.rows) if (typeof row.id === "string") this.ids.add(row.id);
    }
    return args.result;
  }
}
