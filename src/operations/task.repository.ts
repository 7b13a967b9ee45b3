import { randomUUID } from "node:crypto";
import { type Insertable, type Selectable, sql, type Transaction } from "kysely";
import type { Announce } from "../db/after-commit-announcer.js";
import type { Database } from "../db/schema.js";
import { ScopedTable } from "../db/scoped-table.js";
import { NotFoundError } from "../shared/errors.js";
import type { JsonObject } from "../shared/json.js";
import type { Task, TaskCompensation, TaskOutcome, TaskState } from "./task.js";
import type { TaskTable } from "./task.table.js";

/** The channel a newly claimable task is announced on, as `<tenant>:<kind>`. */
export const tasksChannel = "anvil_tasks";

/** A task just leased, with its operation's resource. */
export interface ReadyTask {
  readonly task: Task;
  readonly resource: string;
}

/** A task to insert, its dependencies already resolved to task ids. */
export interface TaskRow {
  readonly id: string;
  readonly step: string;
  readonly kind: string;
  readonly input: JsonObject;
  readonly dependsOn: readonly string[];
  /** The starting call's traceparent, when it was traced. */
  readonly traceParent?: string | undefined;
  /** How to undo the step once it succeeded. */
  readonly compensation?: TaskCompensation | undefined;
}

/** What every task to insert has, and what decides whether it starts queued. */
type QueuedOrBlockedRow = Pick<TaskRow, "id" | "step" | "kind" | "input" | "dependsOn">;

/** A compensation task to insert (see compensation.ts). */
export interface CompensationRow {
  readonly id: string;
  readonly step: string;
  readonly kind: string;
  readonly input: JsonObject;
  /** Ids of the compensation tasks that must succeed first. */
  readonly dependsOn: readonly string[];
  /** The id of the task it undoes. */
  readonly compensates: string;
  readonly maxAttempts: number;
  readonly traceParent: string | null;
}

/**
 * The task queue: SQL over `tasks`, within one transaction and one tenant.
 * Claims lock the task and share its operation with SKIP LOCKED, so two
 * workers never get the same task; every other write, and a claim that
 * waits for a held operation, locks the operation first (see
 * task-lifecycle.ts), which keeps the lock order one-way.
 */
export class TaskRepository {
  readonly #trx: Transaction<Database>;
  readonly #tenant: string;
  readonly #table: ScopedTable<"tasks">;
  readonly #register: Announce;

  /** `announce` registers a notification for after the commit (Repositories gives the transaction's). */
  constructor(trx: Transaction<Database>, tenant: string, announce: Announce) {
    this.#trx = trx;
    this.#tenant = tenant;
    this.#register = announce;
    this.#table = new ScopedTable(trx, tenant, "tasks", "task");
  }

  /** Inserts the tasks of an operation: those without dependencies queued, the rest blocked. */
  insert(operationId: string, tasks: readonly TaskRow[], maxAttempts: number): Promise<void> {
    return this.#insertQueuedOrBlocked(operationId, tasks, (t) => ({
      max_attempts: maxAttempts,
      trace_parent: t.traceParent ?? null,
      compensation: t.compensation ? JSON.stringify({ kind: t.compensation.kind, config: t.compensation.config, max_attempts: t.compensation.maxAttempts }) : null,
    }));
  }

  /** Inserts the compensation tasks of an operation that compensates: those waiting for none queued, the rest blocked. */
  insertCompensations(operationId: string, tasks: readonly CompensationRow[]): Promise<void> {
    return this.#insertQueuedOrBlocked(operationId, tasks, (t) => ({
      max_attempts: t.maxAttempts,
      trace_parent: t.traceParent,
      compensates: t.compensates,
    }));
  }

  /** One multi-row insert of an operation's tasks (queued when they depend on none), announcing the queued ones. */
  async #insertQueuedOrBlocked<T extends QueuedOrBlockedRow>(
    operationId: string,
    tasks: readonly T[],
    rest: (t: T) => Pick<Insertable<TaskTable>, "max_attempts" | "trace_parent" | "compensation" | "compensates">,
  ): Promise<void> {
    if (tasks.length === 0) return;
    const rows = await this.#trx
      .insertInto("tasks")
      .values(
        tasks.map((t) => ({
          tenant_id: this.#tenant,
          id: t.id,
          operation_id: operationId,
          step: t.step,
          kind: t.kind,
          input: JSON.stringify(t.input),
          state: t.dependsOn.length === 0 ? "queued" : "blocked",
          depends_on: [...t.dependsOn],
          ...rest(t),
        })),
      )
      .returning(["kind", "state"])
      .execute();
    this.#announce(rows.filter((r) => r.state === "queued").map((r) => r.kind));
  }

  /** The task, unlocked; NOT_FOUND if it does not exist. */
  async find(id: string): Promise<Task> {
    return toTask(await this.#table.get(id));
  }

  /** The task, row-locked until the transaction ends. */
  async lock(id: string): Promise<Task> {
    return toTask(await this.#table.get(id, "update"));
  }

  /**
   * The tasks among `ids` that exist, row-locked in id order until the
   * transaction ends. Lock their operations first (OperationRepository
   * lockOfTasks): the one lock order.
   */
  async lockAll(ids: readonly string[]): Promise<Task[]> {
    const rows = await this.#trx
      .selectFrom("tasks")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      // One array parameter: the same statement text for any number of tasks.
      .where("id", "=", sql<string>`any(${[...ids]}::uuid[])`)
      .orderBy("id")
      .forUpdate()
      .execute();
    return rows.map(toTask);
  }

  /** How many tasks are leased to `workerId` now (a stream's flow control). */
  async leasedTo(workerId: string): Promise<number> {
    const row = await this.#trx
      .selectFrom("tasks")
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .where("tenant_id", "=", this.#tenant)
      .where("state", "=", sql.lit("leased")) // literal: matches the partial index tasks_leased
      .where("worker_id", "=", workerId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Every task of an operation, in creation order. */
  async ofOperation(operationId: string): Promise<Task[]> {
    const rows = await this.#trx
      .selectFrom("tasks")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("operation_id", "=", operationId)
      .orderBy("create_time")
      .orderBy("step")
      .execute();
    return rows.map(toTask);
  }

  /**
   * Leases up to `limit` of the oldest ready tasks of `kinds` to `workerId`,
   * each with a fresh token, counting the attempt; picked and leased in one
   * statement. The pick locks each task (skipping tasks other claims hold)
   * and shares its operation's row (FOR KEY SHARE, skipping operations a
   * completion, report or cancel holds FOR UPDATE): claims of one
   * operation's tasks run side by side and meet only when they append
   * their events (OperationRepository.appendClaims), while every other
   * writer of the operation waits for them, or they for it. With
   * `sharedOperation` (the caller shares that operation's row already):
   * its ready tasks only.
   */
  async leaseReady(kinds: readonly string[], limit: number, workerId: string, leaseMs: number, sharedOperation?: string): Promise<ReadyTask[]> {
    const pick = this.#ready(kinds)
      // The operation's resource, read with the pick (it never changes).
      .select(["t.id", "o.resource as operation_resource"])
      .limit(limit);
    const picked =
      sharedOperation === undefined
        ? pick.modifyEnd(sql`for update of t skip locked for key share of o skip locked`)
        : pick.where("t.operation_id", "=", sharedOperation).modifyEnd(sql`for update of t skip locked`);
    const rows = await this.#trx
      // Materialized: evaluated once. As a subquery in FROM, a join could run
      // it again per row, and each run picks and locks more tasks.
      .with((cte) => cte("r").materialized(), () => picked)
      .updateTable("tasks as u")
      .from("r")
      .set({
        state: "leased",
        attempt: sql`u.attempt + 1`,
        lease_token: sql<string>`gen_random_uuid()`,
        lease_expires_at: after(leaseMs),
        lease_ms: leaseMs,
        worker_id: workerId,
        progress: 0,
        version: sql`u.version + 1`,
        update_time: sql<Date>`now()`,
      })
      .where("u.tenant_id", "=", this.#tenant)
      .whereRef("u.id", "=", "r.id")
      .returningAll(
        // Stryker disable next-line StringLiteral: equivalent: `returning *` would only add r's columns (r.id is u.id, and operation_resource is returned anyway)
        "u",
      )
      .returning(["r.operation_resource"])
      .execute();
    return rows.map((r) => ({ task: toTask(r), resource: r.operation_resource }));
  }

  /**
   * The operation of the oldest ready task of one of `kinds`, read without
   * locking anything: for a claim whose locked pick skipped every ready task
   * because other transactions hold their operations.
   */
  async oldestReadyOperation(kinds: readonly string[]): Promise<string | undefined> {
    const row = await this.#ready(kinds).select("t.operation_id").limit(1).executeTakeFirst();
    return row?.operation_id;
  }

  /**
   * Whether a claim of `kinds` could find anything: a ready task, or an
   * expired lease to return to the queue. One statement outside any
   * transaction, for the claims a notification woke: every waiting worker
   * of the tenant wakes for each one, and most find nothing.
   */
  async claimable(kinds: readonly string[]): Promise<boolean> {
    const { rows } = await sql<{ claimable: boolean }>`/* tasks.claimable */ select exists (
        select 1 from tasks where tenant_id = ${this.#tenant} and state = 'queued' and kind in (${sql.join([...kinds])}) and run_after <= now()
      ) or exists (
        select 1 from tasks where tenant_id = ${this.#tenant} and state = 'leased' and lease_expires_at < now()
      ) as claimable`.execute(this.#trx);
    // Stryker disable next-line OptionalChaining,LogicalOperator,BooleanLiteral: equivalent: `select a or b` with two exists() always returns one row with a non-null boolean; the fallback (claim when unsure) cannot be reached
    return rows[0]?.claimable ?? true;
  }

  /** Ready tasks of `kinds`, oldest first, joined to their operations. */
  #ready(kinds: readonly string[]) {
    return (
      this.#trx
        .selectFrom("tasks as t")
        .innerJoin("operations as o", (j) => j.onRef("o.tenant_id", "=", "t.tenant_id").onRef("o.id", "=", "t.operation_id"))
        .where("t.tenant_id", "=", this.#tenant)
        // A literal, not a parameter: only then can a cached generic plan use the
        // partial index tasks_ready (WHERE state = 'queued'). With a parameter,
        // PostgreSQL's generic plan scanned and sorted every task on every claim.
        .where("t.state", "=", sql.lit("queued"))
        .where("t.kind", "in", [...kinds])
        .where("t.run_after", "<=", sql<Date>`now()`)
        .orderBy("t.run_after")
    );
  }

  /** Up to `limit` tasks whose lease has expired, locked with their operations (rows others hold are skipped). */
  async expiredLeases(limit: number): Promise<Task[]> {
    const rows = await this.#trx
      .selectFrom("tasks as t")
      .innerJoin("operations as o", (j) => j.onRef("o.tenant_id", "=", "t.tenant_id").onRef("o.id", "=", "t.operation_id"))
      .selectAll("t")
      .where("t.tenant_id", "=", this.#tenant)
      .where("t.state", "=", sql.lit("leased")) // literal: matches the partial index tasks_leased
      .where("t.lease_expires_at", "<", sql<Date>`now()`)
      .orderBy("t.lease_expires_at")
      .limit(limit)
      .forUpdate(["t", "o"])
      .skipLocked()
      .execute();
    return rows.map(toTask);
  }

  /** Extends the lease by the task's lease duration, recording its progress when given. */
  async extend(id: string, progress: number | undefined): Promise<Task> {
    // Stryker disable next-line ConditionalExpression: equivalent: kysely leaves a column set to undefined out of the update
    const values = { lease_expires_at: sql`now() + make_interval(secs => lease_ms / 1000.0)`, ...(progress !== undefined && { progress }) };
    return toTask(await this.#table.update(id, values, undefined));
  }

  /** Puts the task back in the queue, claimable after `delayMs`; any lease is revoked. */
  async requeue(id: string, delayMs: number): Promise<Task> {
    const task = toTask(
      await this.#table.update(
        id,
        { state: "queued", run_after: after(delayMs), lease_token: null, lease_expires_at: null, progress: 0 },
        undefined,
      ),
    );
    // Waiting workers poll anyway; this wakes them when the task is ready now.
    if (delayMs === 0) this.#announce([task.kind]);
    return task;
  }

  /** Marks the task done; its lease, if any, is revoked. */
  async finish(id: string, outcome: TaskOutcome, result: JsonObject | null = null): Promise<Task> {
    return toTask(await this.#table.update(id, finished(outcome, result), undefined));
  }

  /**
   * Marks the task done, as finish() does, and returns every task of its
   * operation afterwards in creation order (ofOperation's): one statement
   * where a completion took two (finishAllAmong for one task). The caller
   * holds the operation's row, so no other transaction changes its tasks
   * meanwhile.
   */
  async finishAmong(id: string, outcome: TaskOutcome, result: JsonObject | null = null): Promise<Task[]> {
    const tasks = await this.finishAllAmong([{ id, result }], outcome);
    if (tasks.length === 0) throw new NotFoundError("task", id);
    return tasks;
  }

  /**
   * Marks each task of `finishes` done with `outcome` and its result, as
   * finish() does, and returns every task of their operations afterwards,
   * by operation and then in creation order (ofOperation's): one statement
   * for a whole batch of completions. Tasks that do not exist are left out.
   * The caller holds the operations' rows, so no other transaction changes
   * their tasks meanwhile.
   */
  async finishAllAmong(finishes: ReadonlyArray<{ readonly id: string; readonly result: JsonObject | null }>, outcome: TaskOutcome): Promise<Task[]> {
    // Stryker disable next-line ConditionalExpression: equivalent but for cost: the statement over no tasks matches nothing (the guard saves the round trip)
    if (finishes.length === 0) return [];
    const json = JSON.stringify(finishes.map((f) => ({ id: f.id, result: f.result })));
    const ids = finishes.map((f) => f.id);
    // The columns finished() sets, for many rows. The statement's other part
    // reads the tasks as they were before it: the finished ones come from the
    // update. Rows are found by `= any(array)` on their indexes: under a
    // generic plan, a join to the record set or an IN (subquery) scanned every task.
    const { rows } = await sql<Selectable<TaskTable>>`/* tasks.finishAllAmong */
      with v as (select * from jsonb_to_recordset(${json}::jsonb) as v (id uuid, result jsonb)),
      f as (
        update tasks t set
          state = 'done',
          outcome = ${outcome}::text,
          result = v.result,
          lease_token = null,
          lease_expires_at = null,
          progress = case when ${outcome}::text = 'succeeded' then 1 else t.progress end,
          version = t.version + 1,
          update_time = now()
        from v
        where t.tenant_id = ${this.#tenant} and t.id = any(${ids}::uuid[]) and t.id = v.id
        returning t.*
      )
      select * from f
      union all
      select * from tasks
      where tenant_id = ${this.#tenant} and operation_id = any(array(select operation_id from f)) and id <> all(${ids}::uuid[])
      order by operation_id, create_time, step`.execute(this.#trx);
    return rows.map(toTask);
  }

  /** Queues the blocked tasks of the operation whose every dependency succeeded. */
  async release(operationId: string): Promise<Task[]> {
    const rows = await this.#trx
      .updateTable("tasks as t")
      .set({ state: "queued", run_after: sql`now()`, update_time: sql`now()` })
      .where("t.tenant_id", "=", this.#tenant)
      .where("t.operation_id", "=", operationId)
      .where("t.state", "=", "blocked")
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom("tasks as d")
              .select("d.id")
              .whereRef("d.tenant_id", "=", "t.tenant_id")
              .where(sql<boolean>`d.id = any(t.depends_on)`)
              .where(sql<boolean>`(d.state <> 'done' or d.outcome <> 'succeeded')`),
          ),
        ),
      )
      .returningAll()
      .execute();
    this.#announce(rows.map((r) => r.kind));
    return rows.map(toTask);
  }

  /**
   * Ends the operation's tasks that are not done as cancelled: only those no
   * worker holds, or (`includeLeased`) all of them, revoking their leases.
   */
  async cancelOpen(operationId: string, includeLeased: boolean): Promise<void> {
    await this.#trx
      .updateTable("tasks")
      .set({ state: "done", outcome: "cancelled", lease_token: null, lease_expires_at: null, update_time: sql`now()` })
      .where("tenant_id", "=", this.#tenant)
      .where("operation_id", "=", operationId)
      .where("state", "in", includeLeased ? ["blocked", "queued", "leased"] : ["blocked", "queued"])
      .execute();
  }

  /** Announces, after the commit, that tasks of `kinds` are claimable, on `tasksChannel` as `<tenant>:<kind>` (each kind once). */
  #announce(kinds: readonly string[]): void {
    for (const kind of kinds) this.#register(tasksChannel, `${this.#tenant}:${kind}`);
  }
}

/** What marking a task done changes: its outcome and result; its lease, if any, is revoked. */
function finished(outcome: TaskOutcome, result: JsonObject | null) {
  return {
    state: "done",
    outcome,
    // Stryker disable next-line ConditionalExpression: equivalent: a JSON null reads back as null like SQL NULL, and nothing filters on it
    result: result === null ? null : JSON.stringify(result),
    lease_token: null,
    lease_expires_at: null,
    ...(outcome === "succeeded" && { progress: 1 }),
  };
}

/** The database's now() plus `ms`: every lease and retry time comes from one clock. */
function after(ms: number) {
  // Stryker disable next-line ConditionalExpression: equivalent: now() plus zero seconds is now() (the branch saves the parameter)
  return ms === 0 ? sql<Date>`now()` : sql<Date>`now() + make_interval(secs => ${ms / 1000}::double precision)`;
}

function toTask(row: Selectable<TaskTable>): Task {
  return {
    id: row.id,
    operationId: row.operation_id,
    step: row.step,
    kind: row.kind,
    input: row.input as JsonObject,
    state: row.state as TaskState,
    outcome: row.outcome as TaskOutcome | null,
    dependsOn: row.depends_on,
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    progress: row.progress,
    result: row.result as JsonObject | null,
    leaseToken: row.lease_token,
    leaseExpiresAt: row.lease_expires_at,
    leaseMs: row.lease_ms,
    workerId: row.worker_id,
    traceParent: row.trace_parent,
    compensation: row.compensation && { kind: row.compensation.kind, config: row.compensation.config as JsonObject, maxAttempts: row.compensation.max_attempts },
    compensates: row.compensates,
  };
}
