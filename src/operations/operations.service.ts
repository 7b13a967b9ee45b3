import type { UnitOfWork } from "../db/unit-of-work.js";
import type { KeysetPager, KeysetQuery } from "../shared/keyset-pager.js";
import type { Page, PageRequest } from "../shared/pagination.js";
import type { Scope } from "../shared/scope.js";
import type { Operation, OperationEvent, OperationFilter } from "./operation.js";
import type { TaskLifecycle } from "./task-lifecycle.js";

/** The keyset query of a filtered list: the filters are part of its identity. */
function operationsMatching(filter: OperationFilter): KeysetQuery<Operation> {
  const query = `operations?state=${filter.state ?? ""}&kind=${encodeURIComponent(filter.kind ?? "")}&resource=${encodeURIComponent(filter.resource ?? "")}`;
  return { query, shape: ["timestamp", "uuid"], keyOf: (o) => [o.createTime.toISOString(), o.id] };
}

function eventsOf(id: string): KeysetQuery<OperationEvent> {
  return { query: `operations/${id}/events`, shape: ["integer"], keyOf: (e) => [e.sequence] };
}

/** The operations use cases that clients call (workers have theirs in workers.service.ts). */
export class OperationsService {
  readonly #uow: UnitOfWork;
  readonly #pager: KeysetPager;
  readonly #lifecycle: TaskLifecycle;

  constructor(uow: UnitOfWork, pager: KeysetPager, lifecycle: TaskLifecycle) {
    this.#uow = uow;
    this.#pager = pager;
    this.#lifecycle = lifecycle;
  }

  get(scope: Scope, id: string): Promise<Operation> {
    return this.#uow.read(scope, (tx) => tx.operations.get(id));
  }

  list(scope: Scope, filter: OperationFilter, page: PageRequest): Promise<Page<Operation>> {
    return this.#pager.page(scope, page, operationsMatching(filter), (limit, after) =>
      this.#uow.read(scope, (tx) => tx.operations.list(filter, limit, after)),
    );
  }

  cancel(scope: Scope, id: string): Promise<Operation> {
    return this.#uow.transact(scope, (tx) => this.#lifecycle.cancel(tx, id));
  }

  /** Events in sequence order; NOT_FOUND when the operation does not exist. */
  events(scope: Scope, id: string, page: PageRequest): Promise<Page<OperationEvent>> {
    return this.#pager.page(scope, page, eventsOf(id), (limit, after) =>
      this.#uow.transact(scope, async (tx) => {
        const events = await tx.operations.events(id, (after?.[0] as number | undefined) ?? 0, limit);
        // No rows: tell a missing operation (NOT_FOUND) from a page past the end.
        if (events.length === 0) await tx.operations.get(id);
        return events;
      }),
    );
  }
}
