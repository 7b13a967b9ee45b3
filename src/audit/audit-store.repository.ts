import type { Kysely } from "kysely";
import type { Database } from "../db/schema.js";
import type { NewAuditEvent } from "./audit-event.js";
import { rowOf } from "./audit.repository.js";

/**
 * The queries on `audit_events` that span tenants, straight on the pool:
 * batches of refusals written off the request path (each event names its
 * own tenant), and retention. Nothing here reads events; reads go through
 * the tenant-scoped AuditRepository.
 */
export class AuditStore {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** Inserts a batch of events, each for its tenant, in one statement. */
  async insertMany(events: ReadonlyArray<{ readonly tenant: string; readonly event: NewAuditEvent }>): Promise<void> {
    if (events.length === 0) return;
    await this.#db
      .insertInto("audit_events")
      .values(events.map(({ tenant, event }) => rowOf(event, tenant)))
      .execute();
  }

  /**
   * Deletes up to `batchSize` events older than `cutoff`, oldest first, in
   * any tenant, and returns how many it deleted: retention calls it until it
   * returns less than `batchSize`, so that no statement holds many rows at once.
   */
  async deleteOlderThan(cutoff: Date, batchSize: number): Promise<number> {
    const doomed = this.#db
      .selectFrom("audit_events")
      .select("id")
      .where("time", "<", cutoff)
      .orderBy("time")
      .limit(batchSize);
    const result = await this.#db
      .deleteFrom("audit_events")
      // Ids are random UUIDs: unique across tenants in practice, and the subquery bounds the batch.
      .where("id", "in", doomed)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
