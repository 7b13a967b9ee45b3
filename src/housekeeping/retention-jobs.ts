import type { HousekeepingJob } from "./housekeeping-job.js";
import { inBatches } from "./housekeeping-job.js";
import type { RetentionRepository } from "./retention.repository.js";

/** Rows per batch: each batch is one short statement. */
const eventBatch = 5_000;
const operationBatch = 500;
const keyBatch = 1_000;
/** Batches per sweep and job: a backlog is worked off over several sweeps, never in one long burst. */
const maxBatches = 200;

/**
 * Deletes operations that ended (succeeded, failed or cancelled) more than
 * `retentionMs` ago, with their events and tasks (and, by cascade, their
 * artifacts and the artifacts' chunks). Queued and running
 * operations are never touched, however old.
 */
export function operationsRetention(repository: RetentionRepository, retentionMs: number): HousekeepingJob {
  return {
    name: "operations_retention",
    counts: ["operation_events", "operations", "tasks"],
    run: async (signal, count) => {
      await inBatches(eventBatch, maxBatches, signal, async () => {
        const n = await repository.deleteEventsOfEndedOperations(retentionMs, eventBatch);
        count("operation_events", n);
        return n;
      });
      await inBatches(operationBatch, maxBatches, signal, async () => {
        const { operations, tasks } = await repository.deleteEndedOperations(retentionMs, operationBatch);
        count("operations", operations);
        count("tasks", tasks);
        return operations;
      });
    },
  };
}

/** Deletes idempotency keys (request ids of creates) first used more than `windowMs` ago. */
export function idempotencyRetention(repository: RetentionRepository, windowMs: number): HousekeepingJob {
  return {
    name: "idempotency_keys_retention",
    counts: ["idempotency_keys"],
    run: async (signal, count) => {
      await inBatches(keyBatch, maxBatches, signal, async () => {
        const n = await repository.deleteIdempotencyKeys(windowMs, keyBatch);
        count("idempotency_keys", n);
        return n;
      });
    },
  };
}

/** An upload no chunk arrived for this long is abandoned (its gateway died): far beyond any pause of a live one. */
export const abandonedUploadMs = 60 * 60 * 1000;
const uploadBatch = 10;

/**
 * Deletes artifact uploads abandoned mid-way, with their chunks. Finished
 * artifacts go with their operation (operationsRetention, by cascade).
 */
export function abandonedUploads(repository: RetentionRepository, idleMs = abandonedUploadMs): HousekeepingJob {
  return {
    name: "abandoned_uploads",
    counts: ["artifacts"],
    run: async (signal, count) => {
      await inBatches(uploadBatch, maxBatches, signal, async () => {
        const n = await repository.deleteAbandonedUploads(idleMs, uploadBatch);
        count("artifacts", n);
        return n;
      });
    },
  };
}

/** What audit retention deletes through: the audit store (src/audit/). */
export interface AuditRetentionStore {
  deleteOlderThan(cutoff: Date, batchSize: number): Promise<number>;
}

/** Deletes audit events older than `retentionMs` (ANVIL_AUDIT_RETENTION), in every tenant. */
export function auditRetention(store: AuditRetentionStore, retentionMs: number): HousekeepingJob {
  return {
    name: "audit_retention",
    counts: ["audit_events"],
    run: async (signal, count) => {
      const cutoff = new Date(Date.now() - retentionMs);
      await inBatches(eventBatch, maxBatches, signal, async () => {
        const n = await store.deleteOlderThan(cutoff, eventBatch);
        count("audit_events", n);
        return n;
      });
    },
  };
}
