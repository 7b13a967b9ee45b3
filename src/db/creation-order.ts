import type { KeysetQuery } from "../shared/keyset-pager.js";
import type { SortKey } from "./keyset.js";

/**
 * The default order of every resource list: oldest first, the id breaking
 * ties between equal creation times. The repository sorts by it and the
 * pager encodes the same two values in its tokens, so the two are kept side
 * by side here.
 */
export const creationOrder: readonly SortKey[] = [
  { column: "create_time", direction: "asc" },
  { column: "id", direction: "asc" },
];

/**
 * The keyset query of a list in creation order; `query` names it (resource,
 * filters) so its tokens cannot be replayed against another list.
 *
 * @example
 *   const allAgents = creationKeyset<Agent>("agents");
 */
export function creationKeyset<T extends { readonly createTime: Date; readonly id: string }>(query: string): KeysetQuery<T> {
  return {
    query,
    shape: ["timestamp", "uuid"],
    keyOf: (item) => [item.createTime.toISOString(), item.id],
  };
}
