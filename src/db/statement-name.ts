import { AliasNode, type CompiledQuery, type OperationNode, TableNode } from "kysely";

/**
 * The name the statement metrics and spans give a statement — bounded and
 * readable, where the prepared statement's own name is a hash of its text,
 * and never carrying a value:
 *
 * - a statement built with kysely's query builder: its kind and first table
 *   from the query tree (`select users`, `update operations`);
 * - a statement written as SQL text: the name its repository gives it in a
 *   leading comment, `sql\`/* tasks.finishAllAmong *\/ with …\`` (the owning
 *   table or area, a dot, the method) — the comment also shows in
 *   PostgreSQL's own views (`pg_stat_activity`, `pg_stat_statements`);
 * - kysely's transaction control: `begin`, `commit`, `rollback`;
 * - any other SQL text: `raw`.
 */
export function statementName(query: CompiledQuery): string {
  const node = query.query;
  const kind = builtKind(node);
  if (kind === undefined) return textName(query.sql);
  const table = tableOf(node);
  return table === undefined ? kind : `${kind} ${table}`;
}

/** Whether a name is a built statement's (`select users`), whose kind and table semantic conventions name apart. */
export function builtStatement(name: string): { readonly operation: string; readonly table: string } | undefined {
  const space = name.indexOf(" ");
  if (space === -1) return undefined;
  const operation = name.slice(0, space);
  return builtKinds.has(operation) ? { operation, table: name.slice(space + 1) } : undefined;
}

const builtKinds = new Set(["select", "insert", "update", "delete", "merge"]);

function builtKind(node: OperationNode): string | undefined {
  switch (node.kind) {
    case "SelectQueryNode":
      return "select";
    case "InsertQueryNode":
      return "insert";
    case "UpdateQueryNode":
      return "update";
    case "DeleteQueryNode":
      return "delete";
    case "MergeQueryNode":
      return "merge";
    // Stryker disable next-line ConditionalExpression: falling out of the switch returns undefined as well
    default:
      return undefined;
  }
}

function textName(text: string): string {
  if (text.startsWith("/* ")) {
    const end = text.indexOf(" */", 3);
    if (end > 3) return text.slice(3, end);
  }
  // kysely's own: `begin` (or `start transaction …` with an isolation level), `commit`, `rollback`.
  if (text === "begin" || text.startsWith("start transaction")) return "begin";
  if (text === "commit" || text === "rollback") return text;
  return "raw";
}

/**
 * The table the statement is about, reading only the node shapes kysely
 * documents: an update's or insert's or merge's target (an update's FROM
 * lists the tables it joins, not the one it updates), else a select's or
 * delete's first FROM.
 */
function tableOf(node: OperationNode): string | undefined {
  const n = node as { from?: { froms: readonly OperationNode[] }; into?: OperationNode; table?: OperationNode };
  return tableName(n.table ?? n.into ?? n.from?.froms[0]);
}

function tableName(node: OperationNode | undefined): string | undefined {
  if (node === undefined) return undefined;
  if (TableNode.is(node)) return node.table.identifier.name;
  // Stryker disable next-line ConditionalExpression: no other node kysely puts first in a FROM or as a target carries a `node`
  if (AliasNode.is(node)) return tableName(node.node);
  return undefined;
}
