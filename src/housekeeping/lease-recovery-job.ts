import type { HousekeepingJob } from "./housekeeping-job.js";
import { inBatches } from "./housekeeping-job.js";
import type { RetentionRepository } from "./retention.repository.js";

/** What the job needs of the operations capability (OperationsModule). */
export interface LeaseRecovery {
  /** Handles up to 10 of the tenant's expired leases in one transaction; how many it handled. */
  recoverExpiredLeases(tenant: string): Promise<number>;
}

/** Tenants per sweep, and batches of 10 leases per tenant and sweep. */
const maxTenants = 1_000;
const maxBatches = 100;

/**
 * Returns expired leases to the queue (or fails their tasks when out of
 * attempts) in every tenant, so a task whose worker died is retried even in
 * a tenant where no worker claims any more — claims only recover their own
 * tenant's leases.
 */
export function leaseRecovery(repository: RetentionRepository, operations: LeaseRecovery): HousekeepingJob {
  return {
    name: "lease_recovery",
    counts: ["leases_expired"],
    run: async (signal, count) => {
      for (const tenant of await repository.tenantsWithExpiredLeases(maxTenants)) {
        if (signal.aborted) return;
        await inBatches(10, maxBatches, signal, async () => {
          const n = await operations.recoverExpiredLeases(tenant);
          count("leases_expired", n);
          return n;
        });
      }
    },
  };
}
