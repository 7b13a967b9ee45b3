import { randomUUID } from "node:crypto";
import { type Selectable, sql, type Transaction } from "kysely";
import type { SortKey } from "../db/keyset.js";
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
 * them, so sequences have no gaps and no duplicates, and the NOTIFY
 * announcing them is delivered only if the transaction commits.
 */
export class OperationRepository {
  readonly #trx: Transaction<Database>;
  readonly #tenant: string;
  readonly #table: ScopedTable<"operations">;

  constructor(trx: Transaction<Database>, tenant: string) {
    this.#trx = trx;
    this.#tenant = tenant;
    this.#table = new ScopedTable(trx, tenant, "operations", "operation");
  }

  /** The operation; `lock: "update"` holds its row (and so its event sequence) until the transaction ends. */
  async get(id: string, lock: "none" | "update" = "none"): Promise<Operation> {
    return toOperation(await this.#table.get(id, lock));
  }

  /**
   * The operation of task `taskId`, row-locked until the transaction ends
   * (its event sequence with it); undefined when no such task exists. One
   * statement where a read of the task and a lock of its operation took two.
   */
  async lockOfTask(taskId: string): Promise<Operation | undefined> {
    const row = await this.#trx
      .selectFrom("operations")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("id", "=", (eb) => eb.selectFrom("tasks").select("operation_id").where("tenant_id", "=", this.#tenant).where("id", "=", taskId))
      .forUpdate()
      .executeTakeFirst();
    return row && toOperation(row);
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
      ...(patch.state !== undefined && { state: patch.state }),
      ...(patch.progress !== undefined && { progress: patch.progress }),
      ...(patch.stage !== undefined && { stage: patch.stage }),
      ...(patch.message !== undefined && { message: patch.message }),
      ...(patch.attempt !== undefined && { attempt: patch.attempt }),
      ...(patch.result !== undefined && { result: patch.result === null ? null : JSON.stringify(patch.result) }),
      ...(patch.error !== undefined && { error: patch.error === null ? null : JSON.stringify(patch.error) }),
      ...(patch.cancelRequested !== undefined && { cancel_requested: patch.cancelRequested }),
      ...(patch.compensations !== undefined && { compensations: JSON.stringify(patch.compensations) }),
      ...(patch.started && { start_time: sql`coalesce(start_time, now())` }),
      ...(patch.ended && { end_time: sql`now()` }),
      ...(events.length > 0 && { last_sequence: sql`last_sequence + ${events.length}` }),
    };
    if (events.length === 0) return { operation: toOperation(await this.#table.update(id, values, undefined)) };
    // One statement, not three round trips: the update allocates the
    // sequences, the insert appends the events with them, and the NOTIFY
    // announcing them is delivered when (and only if) this commits.
    const update = this.#trx
      .updateTable("operations")
      .set((eb) => ({ ...values, version: eb("version", "+", 1), update_time: new Date() }))
      .where("tenant_id", "=", this.#tenant)
      .where("id", "=", id)
      .returningAll();
    const rows = sql.join(
      events.map((e, i) => sql`(${i + 1}::int, ${e.step}::text, ${e.payload.type}::text, ${JSON.stringify(payloadJson(e.payload))}::jsonb)`),
    );
    const result = await sql<Selectable<OperationTable>>`/* operations.record */
      with u as (${update}),
      e as (
        insert into operation_events (tenant_id, operation_id, sequence, step, type, payload)
        select u.tenant_id, u.id, u.last_sequence - ${events.length}::int + v.i, v.step, v.type, v.payload
        from u, (values ${rows}) as v (i, step, type, payload)
      )
      select u.*, pg_notify(${operationEventsChannel}, ${`${this.#tenant}:${id}:`} || u.last_sequence) as announced from u`.execute(this.#trx);
    const row = result.rows[0];
    if (!row) throw new NotFoundError("operation", id);
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
    if (claims.length === 0) return;
    const running = { step: "", payload: { type: "stage", stage: "running" } } as const;
    // i = 0: the stage event, kept only where the operation starts.
    const events = claims.flatMap((c) => [running, ...c.events].map((e, i) => ({ operationId: c.operationId, i, e })));
    const rows = sql.join(events.map(({ operationId, i, e }) => sql`(${operationId}::uuid, ${i}::int, ${e.step}::text, ${e.payload.type}::text, ${JSON.stringify(payloadJson(e.payload))}::jsonb)`));
    const attempts = sql.join(claims.map((c) => sql`(${c.operationId}::uuid, ${c.claimed}::int)`));
    await sql`/* operations.appendClaims */
      with l as (
        select id, state = 'queued' as starts from operations
        where tenant_id = ${this.#tenant} and id in (${sql.join(claims.map((c) => c.operationId))})
        order by id
        for no key update
      ),
      v (operation_id, i, step, type, payload) as (values ${rows}),
      k as (
        select v.operation_id, v.step, v.type, v.payload, row_number() over (partition by v.operation_id order by v.i)::int as n
        from v join l on l.id = v.operation_id
        where v.i > 0 or l.starts
      ),
      s as (select operation_id, count(*)::int as events from k group by operation_id),
      a (operation_id, claimed) as (values ${attempts}),
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
        returning o.id, o.last_sequence, s.events
      ),
      e as (
        insert into operation_events (tenant_id, operation_id, sequence, step, type, payload)
        select ${this.#tenant}, u.id, u.last_sequence - u.events + k.n, k.step, k.type, k.payload
        from u join k on k.operation_id = u.id
      )
      select pg_notify(${operationEventsChannel}, ${`${this.#tenant}:`}::text || u.id::text || ':' || u.last_sequence::text) as announced from u`.execute(this.#trx);
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
