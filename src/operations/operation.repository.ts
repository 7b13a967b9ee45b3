import { randomUUID } from "node:crypto";
import { type Selectable, sql, type Transaction } from "kysely";
import type { SortKey } from "../db/keyset.js";
import type { Announce } from "../db/after-commit-announcer.js";
import type { Database } from "../db/schema.js";
import { ScopedTable } from "../db/scoped-table.js";
import { NotFoundError } from "../shared/errors.js";
import type { JsonObject } from "../shared/json.js";
import type { CompensationRecord, EventPayload, NewEvent, Operation, OperationEvent, OperationFilter, OperationPatch, OperationState } from "./operation.js";
import type { OperationEventTable, OperationTable } from "./operation.table.js";

/** The channel every appended event is announced on, as `<tenant>:<operation id>:<sequence>`. */
export const operationEventsChannel = "anvil_operation_events";

/** One claim's record on one operation: the tasks it took there and the events saying so. */
export interface ClaimRecord {
  readonly operationId: string;
  /** Tasks claimed: one attempt each. */
  readonly claimed: number;
  /** In order, after the `running` stage event when the claim starts the operation. */
  readonly events: readonly NewEvent[];
}

/**
 * One operation's change in OperationRepository.recordAll: what a task's
 * success sets (the rest of the row as it is), and the events saying so.
 */
export interface OperationRecord {
  readonly operationId: string;
  readonly patch: Pick<OperationPatch, "state" | "stage" | "progress" | "message" | "ended"> & { readonly result?: JsonObject };
  /** In order; none records the patch alone, and announces nothing. */
  readonly events: readonly NewEvent[];
}

/** Operations are listed newest first; the id breaks ties between equal times. */
export const operationOrder: readonly SortKey[] = [
  { column: "create_time", direction: "desc" },
  { column: "id", direction: "desc" },
];

/**
 * Queries over `operations` and `operation_events`, within one transaction
 * and one tenant. Events are only ever appended together with the update of
 * their operation's `last_sequence`, which locks its row until the commit
 * (FOR UPDATE, or FOR NO KEY UPDATE for a claim): the row lock orders
 * them, so sequences have no gaps and no duplicates; they are announced
 * (AfterCommitAnnouncer) only once the transaction commits.
 */
export class OperationRepository {
  readonly #trx: Transaction<Database>;
  readonly #tenant: string;
  readonly #table: ScopedTable<"operations">;
  readonly #register: Announce;

  /** `announce` registers a notification for after the commit (Repositories gives the transaction's). */
  constructor(trx: Transaction<Database>, tenant: string, announce: Announce) {
    this.#trx = trx;
    this.#tenant = tenant;
    this.#register = announce;
    this.#table = new ScopedTable(trx, tenant, "operations", "operation");
  }

  /** The operation; `lock: "update"` holds its row (and so its event sequence) until the transaction ends. */
  // Stryker disable next-line StringLiteral: equivalent: ScopedTable.get locks only for "update" or "share"
  async get(id: string, lock: "none" | "update" = "none"): Promise<Operation> {
    return toOperation(await this.#table.get(id, lock));
  }

  /**
   * The operation of task `taskId`, row-locked until the transaction ends
   * (its event sequence with it); undefined when no such task exists. One
   * statement where a read of the task and a lock of its operation took two.
   */
  async lockOfTask(taskId: string): Promise<Operation | undefined> {
    return (await this.lockOfTasks([taskId]))[0];
  }

  /**
   * The operations of the tasks among `taskIds` that exist, row-locked in id
   * order until the transaction ends: a batch of completions locks all its
   * operations first, in the order every other batch does, before any task
   * (the one lock order), so two batches over the same operations wait for
   * each other rather than deadlock.
   */
  async lockOfTasks(taskIds: readonly string[]): Promise<Operation[]> {
    const rows = await this.#trx
      .selectFrom("operations")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      // One array parameter: the statement's text, and so its prepared plan, is the same for any batch size.
      // As `= any(array(…))`, not `in (…)`: under a generic plan the semi-join scanned every operation.
      .where("id", "=", (eb) => {
        const ids = eb.selectFrom("tasks").select("operation_id").where("tenant_id", "=", this.#tenant).where("id", "=", sql<string>`any(${[...taskIds]}::uuid[])`);
        return sql<string>`any(array(${ids}))`;
      })
      .orderBy("id")
      .forUpdate()
      .execute();
    return rows.map(toOperation);
  }

  /** A new queued operation. */
  async create(kind: string, resource: string): Promise<Operation> {
    return toOperation(await this.#table.insert({ id: randomUUID(), kind, resource, state: "queued" }));
  }

  /** Up to `limit` operations matching `filter`, newest first, after the keyset position `after`. */
  async list(filter: OperationFilter, limit: number, after: readonly unknown[] | undefined): Promise<Operation[]> {
    const rows = await this.#table.list(operationOrder, limit, after, (q) => {
      if (filter.state !== undefined) q = q.where("state", "=", filter.state);
      if (filter.kind !== undefined) q = q.where("kind", "=", filter.kind);
      if (filter.resource !== undefined) q = q.where("resource", "=", filter.resource);
      return q;
    });
    return rows.map(toOperation);
  }

  /**
   * Applies `patch` and appends `events` in order, announcing them. The
   * caller holds the operation's row lock (get(id, "update")) when the
   * decision depended on what it read.
   */
  async record(id: string, patch: OperationPatch, events: readonly NewEvent[] = []): Promise<{ operation: Operation }> {
    const values: Record<string, unknown> = {
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.state !== undefined && { state: patch.state }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.progress !== undefined && { progress: patch.progress }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.stage !== undefined && { stage: patch.stage }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.message !== undefined && { message: patch.message }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.attempt !== undefined && { attempt: patch.attempt }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.result !== undefined && {
        // Stryker disable next-line ConditionalExpression: 'never null' is equivalent (a JSON null reads back as null like SQL NULL, and nothing filters on it); 'always null' is killed
        result: patch.result === null ? null : JSON.stringify(patch.result),
      }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.error !== undefined && {
        // Stryker disable next-line ConditionalExpression: 'never null' is equivalent (a JSON null reads back as null like SQL NULL, and nothing filters on it); 'always null' is killed
        error: patch.error === null ? null : JSON.stringify(patch.error),
      }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.cancelRequested !== undefined && { cancel_requested: patch.cancelRequested }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(patch.compensations !== undefined && { compensations: JSON.stringify(patch.compensations) }),
      ...(patch.started && { start_time: sql`coalesce(start_time, now())` }),
      ...(patch.ended && { end_time: sql`now()` }),
      // Stryker disable next-line ConditionalExpression,EqualityOperator: 'always' and '>= 0' are equivalent: with no events the sequence gains 0
      ...(events.length > 0 && { last_sequence: sql`last_sequence + ${events.length}` }),
    };
    if (events.length === 0) return { operation: toOperation(await this.#table.update(id, values, undefined)) };
    // One statement, not two round trips: the update allocates the
    // sequences and the insert appends the events with them; they are
    // announced once (and only if) this commits.
    const update = this.#trx
      .updateTable("operations")
      .set((eb) => ({ ...values, version: eb("version", "+", 1), update_time: new Date() }))
      .where("tenant_id", "=", this.#tenant)
      .where("id", "=", id)
      .returningAll()
      .returning(sql<number>`${events.length}::int`.as("appended"));
    const result = await sql<Selectable<OperationTable>>`/* operations.record */
      with u as (${update}),
      v as (${eventRows(events.map((event, i) => ({ operationId: id, n: i + 1, event })))}),
      ${appendedEvents(this.#tenant)}
      select u.* from u`.execute(this.#trx);
    const row = result.rows[0];
    if (!row) throw new NotFoundError("operation", id);
    this.#announce(row.id, row.last_sequence);
    return { operation: toOperation(row) };
  }

  /**
   * Shares the operation's row until the transaction ends (FOR KEY SHARE):
   * what a claim's pick takes, waited for here by a claim whose pick found
   * the operation held by another writer. Other claims share it too; a
   * completion, report or cancel waits for them all.
   */
  async shareForClaims(id: string): Promise<void> {
    await this.#trx.selectFrom("operations").select("id").where("tenant_id", "=", this.#tenant).where("id", "=", id).forKeyShare().execute();
  }

  /**
   * Records one claim on each of its operations, in one statement: counts
   * the attempts, starts a queued operation (a `running` stage event first)
   * and appends the claim's events. The rows are taken FOR NO KEY UPDATE in
   * id order: the claim's pick already shares them, so no completion,
   * report or cancel holds them and the only wait is for another claim's
   * append to the same operation — in one order, so never in a circle.
   * Whether an operation starts is decided on its row as locked (the
   * newest version), not as the pick saw it: two claims of one queued
   * operation's tasks start it once.
   */
  async appendClaims(claims: readonly ClaimRecord[]): Promise<void> {
    // Stryker disable next-line ConditionalExpression: equivalent but for cost: the statement over no claims matches nothing (the guard saves the round trip)
    if (claims.length === 0) return;
    const running = { step: "", payload: { type: "stage", stage: "running" } } as const;
    // n = 0: the stage event, kept only where the operation starts.
    const events = claims.flatMap((c) => [running, ...c.events].map((event, n) => ({ operationId: c.operationId, n, event })));
    const attempts = JSON.stringify(claims.map((c) => ({ operation_id: c.operationId, claimed: c.claimed })));
    const { rows } = await sql<{ id: string; last_sequence: number }>`/* operations.appendClaims */
      with a as (select * from jsonb_to_recordset(${attempts}::jsonb) as a (operation_id uuid, claimed int)),
      l as (
        select id, state = 'queued' as starts from operations
        where tenant_id = ${this.#tenant} and id = any(${claims.map((c) => c.operationId)}::uuid[])
        order by id
        for no key update
      ),
      c as (${eventRows(events)}),
      v as (
        select c.operation_id, c.step, c.type, c.payload, row_number() over (partition by c.operation_id order by c.n)::int as n
        from c join l on l.id = c.operation_id
        where c.n > 0 or l.starts
      ),
      s as (select operation_id, count(*)::int as events from v group by operation_id),
      u as (
        update operations o set
          state = case when l.starts then 'running' else o.state end,
          stage = case when l.starts then 'running' else o.stage end,
          start_time = coalesce(o.start_time, now()),
          attempt = o.attempt + a.claimed,
          last_sequence = o.last_sequence + s.events,
          version = o.version + 1,
          update_time = now()
        from l join s on s.operation_id = l.id join a on a.operation_id = l.id
        where o.tenant_id = ${this.#tenant} and o.id = l.id
        returning o.id, o.last_sequence, s.events as appended
      ),
      ${appendedEvents(this.#tenant)}
      select u.id, u.last_sequence from u`.execute(this.#trx);
    for (const row of rows) this.#announce(row.id, row.last_sequence);
  }

  /**
   * Applies each record's patch to its operation and appends its events in
   * order, for many operations in one statement (record() for one), each
   * announced. The caller holds every operation's row lock (lockOfTasks),
   * so the sequences it allocates are gapless. Returns the operations
   * afterwards, in no particular order.
   */
  async recordAll(records: readonly OperationRecord[]): Promise<Operation[]> {
    // Stryker disable next-line ConditionalExpression: equivalent but for cost: the statement over no records matches nothing (the guard saves the round trip)
    if (records.length === 0) return [];
    const patches = JSON.stringify(
      records.map(({ operationId, patch }) => ({
        id: operationId,
        state: patch.state,
        stage: patch.stage,
        progress: patch.progress,
        message: patch.message,
        result: patch.result,
        ended: patch.ended === true,
      })),
    );
    const events = records.flatMap((r) => r.events.map((event, i) => ({ operationId: r.operationId, n: i + 1, event })));
    // Absent fields are null in the record set: coalesce keeps the column as it is.
    const { rows } = await sql<Selectable<OperationTable> & { appended: number }>`/* operations.recordAll */
      with p as (
        select * from jsonb_to_recordset(${patches}::jsonb)
          as p (id uuid, state text, stage text, progress double precision, message text, result jsonb, ended boolean)
      ),
      v as (${eventRows(events)}),
      s as (select operation_id, count(*)::int as events from v group by operation_id),
      u as (
        update operations o set
          state = coalesce(p.state, o.state),
          stage = coalesce(p.stage, o.stage),
          progress = coalesce(p.progress, o.progress),
          message = coalesce(p.message, o.message),
          result = coalesce(p.result, o.result),
          end_time = case when p.ended then now() else o.end_time end,
          last_sequence = o.last_sequence + coalesce(s.events, 0),
          version = o.version + 1,
          update_time = now()
        from p left join s on s.operation_id = p.id
        -- By key (= any), not only by the join: a generic plan would hash-join a scan of every operation.
        where o.tenant_id = ${this.#tenant} and o.id = any(${records.map((r) => r.operationId)}::uuid[]) and o.id = p.id
        returning o.*, coalesce(s.events, 0) as appended
      ),
      ${appendedEvents(this.#tenant)}
      select u.* from u`.execute(this.#trx);
    for (const row of rows) if (row.appended > 0) this.#announce(row.id, row.last_sequence);
    return rows.map(toOperation);
  }

  /** Announces, after the commit, the operation's events up to `lastSequence`, as `<tenant>:<operation id>:<sequence>`. */
  #announce(id: string, lastSequence: number): void {
    this.#register(operationEventsChannel, `${this.#tenant}:${id}:${lastSequence}`);
  }

  /** Up to `limit` events of the operation with a sequence greater than `after`, in order. */
  async events(id: string, after: number, limit: number): Promise<OperationEvent[]> {
    const rows = await this.#trx
      .selectFrom("operation_events")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("operation_id", "=", id)
      .where("sequence", ">", after)
      .orderBy("sequence")
      .limit(limit)
      .execute();
    return rows.map(toEvent);
  }
}

/**
 * Events to append, as rows `(operation_id, n, step, type, payload)` read
 * from one jsonb parameter: `n` numbers each operation's new events from 1
 * in order. One parameter rather than five per event keeps the statement's
 * text the same for any number of events (prepared once per connection),
 * and kysely has one value to compile instead of hundreds.
 */
function eventRows(events: ReadonlyArray<{ readonly operationId: string; readonly n: number; readonly event: NewEvent }>) {
  const json = JSON.stringify(
    events.map(({ operationId, n, event }) => ({ operation_id: operationId, n, step: event.step, type: event.payload.type, payload: payloadJson(event.payload) })),
  );
  return sql`select * from jsonb_to_recordset(${json}::jsonb) as v (operation_id uuid, n int, step text, type text, payload jsonb)`;
}

/**
 * The CTE `e`: appends the events of CTE `v` (eventRows' columns) to the
 * operations CTE `u` returns — `id`, `last_sequence` after its update and
 * `appended`, how many events the update counted in — event n of an
 * operation taking sequence last_sequence - appended + n.
 */
function appendedEvents(tenant: string) {
  return sql`e as (
        insert into operation_events (tenant_id, operation_id, sequence, step, type, payload)
        select ${tenant}, u.id, u.last_sequence - u.appended + v.n, v.step, v.type, v.payload
        from u join v on v.operation_id = u.id
      )`;
}

function payloadJson(payload: EventPayload): Record<string, unknown> {
  const { type: _, ...rest } = payload;
  return rest;
}

function toOperation(row: Selectable<OperationTable>): Operation {
  return {
    id: row.id,
    kind: row.kind,
    resource: row.resource,
    state: row.state as OperationState,
    progress: row.progress,
    stage: row.stage,
    message: row.message,
    attempt: row.attempt,
    result: row.result as JsonObject | null,
    error: row.error,
    cancelRequested: row.cancel_requested,
    compensations: (row.compensations ?? []) as unknown as CompensationRecord[],
    lastSequence: row.last_sequence,
    createTime: row.create_time,
    updateTime: row.update_time,
    startTime: row.start_time,
    endTime: row.end_time,
  };
}

function toEvent(row: Selectable<OperationEventTable>): OperationEvent {
  return {
    operationId: row.operation_id,
    sequence: row.sequence,
    time: row.time,
    step: row.step,
    payload: { type: row.type, ...row.payload } as EventPayload,
  };
}
