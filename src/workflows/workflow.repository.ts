import { randomUUID } from "node:crypto";
import type { Selectable, Transaction } from "kysely";
import { creationOrder } from "../db/creation-order.js";
import type { Database } from "../db/schema.js";
import { ScopedTable } from "../db/scoped-table.js";
import type { JsonObject } from "../shared/json.js";
import type { NewWorkflow, Workflow, WorkflowPatch, WorkflowState, WorkflowStep } from "./workflow.js";
import type { StepRow, WorkflowRevisionTable, WorkflowTable } from "./workflow.table.js";

/**
 * Queries over `workflows` and `workflow_revisions`, always within one
 * transaction and one tenant. Every write of a workflow also writes its new
 * revision, in the same transaction: the history cannot miss one.
 */
export class WorkflowRepository {
  readonly #trx: Transaction<Database>;
  readonly #tenant: string;
  readonly #table: ScopedTable<"workflows">;

  constructor(trx: Transaction<Database>, tenant: string) {
    this.#trx = trx;
    this.#tenant = tenant;
    this.#table = new ScopedTable(trx, tenant, "workflows", "workflow");
  }

  /** The workflow; `lock: "share"` keeps it from changing until the transaction ends. */
  // Stryker disable next-line StringLiteral: equivalent: ScopedTable.get locks only for "update" or "share"
  async get(id: string, lock: "none" | "share" = "none"): Promise<Workflow> {
    return toWorkflow(await this.#table.get(id, lock));
  }

  /** The workflow locked FOR SHARE, or undefined if it does not exist. */
  async findShared(id: string): Promise<Workflow | undefined> {
    const row = (await this.#table.getMany([id], "share")).get(id);
    return row && toWorkflow(row);
  }

  /** Up to `limit` workflows after the keyset position `after` ([create_time, id]). */
  async list(limit: number, after: readonly unknown[] | undefined): Promise<Workflow[]> {
    return (await this.#table.list(creationOrder, limit, after)).map(toWorkflow);
  }

  async create(input: NewWorkflow): Promise<Workflow> {
    const row = await this.#table.insert({
      id: randomUUID(),
      display_name: input.displayName,
      description: input.description,
      steps: stepsJson(input.steps),
      state: input.state,
    });
    return this.#recordRevision(row);
  }

  /** Applies `patch` as a new revision; when `expectedVersion` is given, only to that revision. */
  async update(id: string, patch: WorkflowPatch, expectedVersion: number | undefined): Promise<Workflow> {
    const values = {
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.displayName !== undefined && { display_name: patch.displayName }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.description !== undefined && { description: patch.description }),
      ...(patch.steps !== undefined && { steps: stepsJson(patch.steps) }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.state !== undefined && { state: patch.state }),
    };
    return this.#recordRevision(await this.#table.update(id, values, expectedVersion));
  }

  /** Deletes the workflow; its revisions go with it (foreign key cascade). */
  delete(id: string, expectedVersion: number | undefined): Promise<void> {
    return this.#table.delete(id, expectedVersion);
  }

  /** Up to `limit` revisions of a workflow, newest first, below revision `after[0]`. */
  async revisions(workflowId: string, limit: number, after: readonly unknown[] | undefined): Promise<Workflow[]> {
    let query = this.#trx
      .selectFrom("workflow_revisions")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("workflow_id", "=", workflowId);
    if (after) query = query.where("revision", "<", after[0] as number);
    const rows = await query.orderBy("revision", "desc").limit(limit).execute();
    return rows.map(fromRevision);
  }

  async #recordRevision(row: Selectable<WorkflowTable>): Promise<Workflow> {
    await this.#trx
      .insertInto("workflow_revisions")
      .values({
        tenant_id: this.#tenant,
        workflow_id: row.id,
        revision: row.version,
        display_name: row.display_name,
        description: row.description,
        steps: JSON.stringify(row.steps),
        state: row.state,
        create_time: row.create_time,
        update_time: row.update_time,
      })
      .execute();
    return toWorkflow(row);
  }
}

function stepsJson(steps: readonly WorkflowStep[]): string {
  const rows: StepRow[] = steps.map((s) => ({
    name: s.name,
    kind: s.kind,
    config: s.config,
    depends_on: [...s.dependsOn],
    ...(s.compensation && { compensation: { kind: s.compensation.kind, config: s.compensation.config, max_attempts: s.compensation.maxAttempts } }),
  }));
  return JSON.stringify(rows);
}

function toSteps(rows: StepRow[]): WorkflowStep[] {
  return rows.map((s) => ({
    name: s.name,
    kind: s.kind,
    config: s.config as JsonObject,
    dependsOn: s.depends_on,
    ...(s.compensation && {
      compensation: { kind: s.compensation.kind, config: s.compensation.config as JsonObject, maxAttempts: s.compensation.max_attempts },
    }),
  }));
}

function toWorkflow(row: Selectable<WorkflowTable>): Workflow {
  return {
    id: row.id,
    displayName: row.display_name,
    description: row.description,
    steps: toSteps(row.steps),
    state: row.state as WorkflowState,
    revision: row.version,
    createTime: row.create_time,
    updateTime: row.update_time,
  };
}

function fromRevision(row: Selectable<WorkflowRevisionTable>): Workflow {
  return toWorkflow({ ...row, id: row.workflow_id, version: row.revision });
}
