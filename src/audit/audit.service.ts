import type { UnitOfWork } from "../db/unit-of-work.js";
import { InvalidArgumentError } from "../shared/errors.js";
import type { KeysetPager } from "../shared/keyset-pager.js";
import type { Page, PageRequest } from "../shared/pagination.js";
import type { Scope } from "../shared/scope.js";
import type { AuditEvent, AuditFilter, AuditRange } from "./audit-event.js";

/**
 * Events an export reads (and holds, and sends as one message) at once:
 * small enough that encoding one batch keeps the event loop well under its
 * 50 ms bound (500 took 16–64 ms warm, more while the JIT warms up).
 */
export const exportBatchSize = 200;

/**
 * Reading the audit log of the caller's tenant: pages of events newest
 * first, and exports of a time range. Writing is not a use case here: the
 * unit of work writes changes' events, the refusal queue the refusals'.
 */
export class AuditService {
  readonly #uow: UnitOfWork;
  readonly #pager: KeysetPager;

  constructor(uow: UnitOfWork, pager: KeysetPager) {
    this.#uow = uow;
    this.#pager = pager;
  }

  /** One page of the events matching `filter`, newest first; the page token is bound to the filter. */
  list(scope: Scope, filter: AuditFilter, page: PageRequest): Promise<Page<AuditEvent>> {
    checkRange(filter);
    const spec = {
      query: `audit_events ${JSON.stringify(filter)} newest`,
      shape: ["timestamp", "uuid"] as const,
      keyOf: (e: AuditEvent) => [e.time.toISOString(), e.id],
    };
    return this.#pager.page(scope, page, spec, (limit, after) =>
      this.#uow.read(scope, (tx) => tx.audit.list(filter, limit, after === undefined ? undefined : [new Date(after[0] as string), after[1]])),
    );
  }

  /**
   * Every event of `range`, oldest first, in batches read one after the
   * other by keyset as the consumer asks for them: only one batch is held
   * at a time, whatever the size of the range.
   */
  async *export(scope: Scope, range: AuditRange): AsyncGenerator<AuditEvent[]> {
    checkRange(range);
    // Events written after the export began are not part of it.
    const bounded = { ...range, endTime: range.endTime ?? new Date() };
    let after: readonly unknown[] | undefined;
    for (;;) {
      const batch = await this.#uow.read({ tenant: scope.tenant, trace: scope.trace }, (tx) => tx.audit.range(bounded, exportBatchSize, after));
      if (batch.length > 0) yield batch;
      if (batch.length < exportBatchSize) return;
      const last = batch[batch.length - 1] as AuditEvent;
      after = [last.time, last.id];
    }
  }
}

function checkRange(range: AuditRange): void {
  if (range.startTime && range.endTime && range.endTime <= range.startTime) {
    throw InvalidArgumentError.field("end_time", "must be after start_time");
  }
}
