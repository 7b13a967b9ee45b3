import { type Kysely, sql } from "kysely";
import type { Database } from "../db/schema.js";

/** What one batch of finished operations took with it. */
export interface OperationsDeleted {
  readonly operations: number;
  readonly tasks: number;
}

/**
 * The housekeeping sweeper's SQL: across every tenant (the sweeper serves the
 * cluster, not a caller), each batch one statement and so one short
 * transaction, taking at most `limit` rows, so no sweep holds locks for long
 * or competes with the traffic for long. Rows other transactions have locked
 * are skipped, to be taken by a later sweep.
 */
export class RetentionRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** Tenants with at least one expired lease (read from the partial index tasks_leased). */
  async tenantsWithExpiredLeases(limit: number): Promise<string[]> {
    const rows = await this.#db
      .selectFrom("tasks")
      .select("tenant_id")
      .distinct()
      .where("state", "=", sql.lit("leased")) // literal: matches the partial index tasks_leased
      .where("lease_expires_at", "<", sql<Date>`now()`)
      .limit(limit)
      .execute();
    return rows.map((r) => r.tenant_id);
  }

  /**
   * Deletes up to `limit` events of operations that ended more than
   * `retentionMs` ago. Events go first, in batches of their own: one
   * operation may have many thousands, which a cascade from its row would
   * delete in one go. A finished operation gets no new events.
   */
  async deleteEventsOfEndedOperations(retentionMs: number, limit: number): Promise<number> {
    const result = await sql`/* retention.deleteEventsOfEndedOperations */
      delete from operation_events where ctid = any(array(
        select e.ctid from operations o
        join operation_events e on e.tenant_id = o.tenant_id and e.operation_id = o.id
        where o.end_time < ${cutoff(retentionMs)} and o.state in ('succeeded', 'failed', 'cancelled')
        limit ${limit}
        for update of e skip locked))`.execute(this.#db);
    return Number(result.numAffectedRows ?? 0n);
  }

  /** Deletes up to `limit` operations that ended more than `retentionMs` ago, with their tasks (and any event left). */
  async deleteEndedOperations(retentionMs: number, limit: number): Promise<OperationsDeleted> {
    const result = await sql<{ operations: string; tasks: string }>`/* retention.deleteEndedOperations */
      with doomed as (
        select tenant_id, id from operations
        where end_time < ${cutoff(retentionMs)} and state in ('succeeded', 'failed', 'cancelled')
        order by end_time
        limit ${limit}
        for update skip locked
      ),
      t as (delete from tasks using doomed where tasks.tenant_id = doomed.tenant_id and tasks.operation_id = doomed.id returning 1),
      o as (delete from operations using doomed where operations.tenant_id = doomed.tenant_id and operations.id = doomed.id returning 1)
      select (select count(*) from o) as operations, (select count(*) from t) as tasks`.execute(this.#db);
    const row = result.rows[0];
    // Stryker disable next-line OptionalChaining: equivalent: a select of two counts always returns its one row
    return { operations: Number(row?.operations ?? 0), tasks: Number(row?.tasks ?? 0) };
  }

  /**
   * Deletes up to `limit` artifact uploads idle for `idleMs` (their gateway
   * died mid-upload: a live upload touches its row as chunks arrive), with
   * the chunks they stored. Returns how many.
   */
  async deleteAbandonedUploads(idleMs: number, limit: number): Promise<number> {
    const result = await sql`/* retention.deleteAbandonedUploads */
      delete from artifacts where ctid = any(array(
        select ctid from artifacts
        where state = 'uploading' and update_time < ${cutoff(idleMs)}
        limit ${limit}
        for update skip locked))`.execute(this.#db);
    return Number(result.numAffectedRows ?? 0n);
  }

  /** Deletes up to `limit` idempotency keys first used more than `windowMs` ago. */
  async deleteIdempotencyKeys(windowMs: number, limit: number): Promise<number> {
    const result = await sql`/* retention.deleteIdempotencyKeys */
      delete from idempotency_keys where ctid = any(array(
        select ctid from idempotency_keys
        where create_time < ${cutoff(windowMs)}
        -- Oldest first, through idempotency_keys_create_time: the scan stops after the batch.
        order by create_time
        limit ${limit}
        for update skip locked))`.execute(this.#db);
    return Number(result.numAffectedRows ?? 0n);
  }
}

/** The database's now() minus `ms`: one clock for every row's age. */
function cutoff(ms: number) {
  return sql<Date>`now() - make_interval(secs => ${ms / 1000}::double precision)`;
}
