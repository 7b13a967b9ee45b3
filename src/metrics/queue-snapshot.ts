import { type Kysely, sql } from "kysely";
import type { Database } from "../db/schema.js";

/** Open tasks of one kind in one state, and (queued) how long the oldest ready one has waited. */
export interface QueueGroup {
  readonly kind: string;
  readonly state: string;
  readonly tasks: number;
  /** Seconds since the oldest ready queued task became ready; 0 when none is ready. */
  readonly oldestAgeSeconds: number;
}

/**
 * The metrics' one read of the queue: open tasks (blocked, queued, leased)
 * by kind and state over all tenants, in one grouped statement. The age is
 * computed by the database's clock, the one `run_after` is written by.
 */
export async function readQueueSnapshot(db: Kysely<Database>): Promise<QueueGroup[]> {
  const rows = await db
    .selectFrom("tasks")
    .select([
      "kind",
      "state",
      sql<string>`count(*)`.as("tasks"),
      sql<string | null>`extract(epoch from now() - min(run_after) filter (where run_after <= now()))`.as("oldest"),
    ])
    .where("state", "in", [sql.lit("blocked"), sql.lit("queued"), sql.lit("leased")])
    .groupBy(["kind", "state"])
    .execute();
  return rows.map((r) => ({
    kind: r.kind,
    state: r.state,
    tasks: Number(r.tasks),
    oldestAgeSeconds: r.state === "queued" && r.oldest !== null ? Math.max(0, Number(r.oldest)) : 0,
  }));
}
