import { randomUUID } from "node:crypto";
import { type Selectable, sql, type Transaction } from "kysely";
import { creationOrder } from "../db/creation-order.js";
import type { Database } from "../db/schema.js";
import { ScopedTable } from "../db/scoped-table.js";
import type { Ipa, IpaPatch, IpaRef, IpaState, NewIpa } from "./ipa.js";
import type { IpaTable } from "./ipa.table.js";

/** Queries over `ipas`, always within one transaction and one tenant. */
export class IpaRepository {
  readonly #trx: Transaction<Database>;
  readonly #tenant: string;
  readonly #table: ScopedTable<"ipas">;

  constructor(trx: Transaction<Database>, tenant: string) {
    this.#trx = trx;
    this.#tenant = tenant;
    this.#table = new ScopedTable(trx, tenant, "ipas", "ipa");
  }

  /**
   * The IPA; `lock: "update"` holds it against every other change until the
   * transaction ends, `"share"` against changes but not other sharers.
   */
  // Stryker disable next-line StringLiteral: equivalent: ScopedTable.get locks only for "update" or "share"
  async get(id: string, lock: "none" | "update" | "share" = "none"): Promise<Ipa> {
    return toIpa(await this.#table.get(id, lock));
  }

  /** Up to `limit` IPAs after the keyset position `after` ([create_time, id]). */
  async list(limit: number, after: readonly unknown[] | undefined): Promise<Ipa[]> {
    return (await this.#table.list(creationOrder, limit, after)).map(toIpa);
  }

  async create(input: NewIpa): Promise<Ipa> {
    return toIpa(
      await this.#table.insert({
        id: randomUUID(),
        display_name: input.displayName,
        workflow_id: input.workflowId,
        ...bindingColumns(input.agentBindings),
        state: "draft" satisfies IpaState,
      }),
    );
  }

  /** Applies `patch`; when `expectedVersion` is given, only to that version. */
  async update(id: string, patch: IpaPatch, expectedVersion: number | undefined): Promise<Ipa> {
    const values = {
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.displayName !== undefined && { display_name: patch.displayName }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.workflowId !== undefined && { workflow_id: patch.workflowId }),
      ...(patch.agentBindings !== undefined && bindingColumns(patch.agentBindings)),
    };
    return toIpa(await this.#table.update(id, values, expectedVersion));
  }

  /** Moves the IPA to `state`, pinning `revision` when given. */
  async setState(id: string, state: IpaState, revision: number | undefined, expectedVersion: number | undefined): Promise<Ipa> {
    // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
    const values = { state, ...(revision !== undefined && { deployed_revision: revision }) };
    return toIpa(await this.#table.update(id, values, expectedVersion));
  }

  delete(id: string, expectedVersion: number | undefined): Promise<void> {
    return this.#table.delete(id, expectedVersion);
  }

  /**
   * The deployed IPAs that run workflow `workflowId` or bind agent
   * `agentId`: one query over a partial index (the workflow's b-tree, or the
   * GIN index on `agent_ids`). It sees every IPA deployed by a committed
   * transaction, so callers lock the workflow or agent first — by updating
   * or deleting it — to keep a concurrent deploy from slipping past.
   */
  async deployedUsing(what: { readonly workflowId: string } | { readonly agentId: string }): Promise<IpaRef[]> {
    let query = this.#trx
      .selectFrom("ipas")
      .select(["id", "display_name"])
      .where("tenant_id", "=", this.#tenant)
      // A literal, so that a cached generic plan of this prepared statement can still use the partial indexes.
      .where("state", "=", sql.lit("deployed" satisfies IpaState));
    query =
      "workflowId" in what
        ? query.where("workflow_id", "=", what.workflowId)
        : query.where(sql<boolean>`agent_ids @> array[${what.agentId}]::uuid[]`);
    const rows = await query.orderBy("id").execute();
    return rows.map((r) => ({ id: r.id, displayName: r.display_name }));
  }
}

function bindingColumns(bindings: Readonly<Record<string, string>>) {
  return {
    agent_bindings: JSON.stringify(bindings),
    // Stryker disable next-line MethodExpression: equivalent: only `@>` reads agent_ids, and containment ignores order (sorted, the stored array is canonical)
    agent_ids: [...new Set(Object.values(bindings))].sort(),
  };
}

function toIpa(row: Selectable<IpaTable>): Ipa {
  return {
    id: row.id,
    displayName: row.display_name,
    workflowId: row.workflow_id,
    agentBindings: row.agent_bindings,
    state: row.state as IpaState,
    deployedRevision: row.deployed_revision ?? undefined,
    version: row.version,
    createTime: row.create_time,
    updateTime: row.update_time,
  };
}
