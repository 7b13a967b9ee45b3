import { randomUUID } from "node:crypto";
import type { Selectable, Transaction } from "kysely";
import { creationOrder } from "../db/creation-order.js";
import type { Database } from "../db/schema.js";
import { ScopedTable } from "../db/scoped-table.js";
import type { JsonObject } from "../shared/json.js";
import type { Agent, AgentPatch, AgentState, NewAgent } from "./agent.js";
import type { AgentTable } from "./agent.table.js";

/** Queries over `agents`, always within one transaction and one tenant. */
export class AgentRepository {
  readonly #table: ScopedTable<"agents">;

  constructor(trx: Transaction<Database>, tenant: string) {
    this.#table = new ScopedTable(trx, tenant, "agents", "agent");
  }

  async get(id: string): Promise<Agent> {
    return toAgent(await this.#table.get(id));
  }

  /**
   * The agents among `ids` that exist, locked FOR SHARE: until the
   * transaction ends nobody can disable or delete them, while other
   * deploys may still share them.
   */
  async getShared(ids: readonly string[]): Promise<Map<string, Agent>> {
    // Stryker disable next-line MethodExpression: equivalent: rows are locked in the scan's order, not the list's (an index scan sorts an IN list's keys itself)
    const rows = await this.#table.getMany([...ids].sort(), "share");
    return new Map([...rows].map(([id, row]) => [id, toAgent(row)]));
  }

  /** Up to `limit` agents after the keyset position `after` ([create_time, id]). */
  async list(limit: number, after: readonly unknown[] | undefined): Promise<Agent[]> {
    return (await this.#table.list(creationOrder, limit, after)).map(toAgent);
  }

  async create(input: NewAgent): Promise<Agent> {
    return toAgent(
      await this.#table.insert({
        id: randomUUID(),
        display_name: input.displayName,
        model: input.model,
        instructions: input.instructions,
        tools: [...input.tools],
        config: JSON.stringify(input.config),
        state: input.state,
      }),
    );
  }

  /** Applies `patch`; when `expectedVersion` is given, only to that version. */
  async update(id: string, patch: AgentPatch, expectedVersion: number | undefined): Promise<Agent> {
    const values = {
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.displayName !== undefined && { display_name: patch.displayName }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.model !== undefined && { model: patch.model }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.instructions !== undefined && { instructions: patch.instructions }),
      ...(patch.tools !== undefined && { tools: [...patch.tools] }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.config !== undefined && { config: JSON.stringify(patch.config) }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.state !== undefined && { state: patch.state }),
    };
    return toAgent(await this.#table.update(id, values, expectedVersion));
  }

  delete(id: string, expectedVersion: number | undefined): Promise<void> {
    return this.#table.delete(id, expectedVersion);
  }
}

function toAgent(row: Selectable<AgentTable>): Agent {
  return {
    id: row.id,
    displayName: row.display_name,
    model: row.model,
    instructions: row.instructions,
    tools: row.tools,
    config: row.config as JsonObject,
    state: row.state as AgentState,
    version: row.version,
    createTime: row.create_time,
    updateTime: row.update_time,
  };
}
