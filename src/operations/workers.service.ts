import type { UnitOfWork } from "../db/unit-of-work.js";
import { InvalidArgumentError } from "../shared/errors.js";
import type { JsonObject } from "../shared/json.js";
import type { Scope } from "../shared/scope.js";
import type { NotificationHub } from "./notification-hub.js";
import type { Operation } from "./operation.js";
import type { ProgressReport, TaskFailure, TaskLifecycle } from "./task-lifecycle.js";
import type { ClaimedTask } from "./task.js";
import { tasksChannel } from "./task.repository.js";
import { linkCallTo } from "../tracing/tracing.js";

/** Longest a claim waits for work; longer requests are reduced to it. */
export const maxClaimWaitMs = 30_000;
/** Lease length when the worker asks for none. */
export const defaultLeaseMs = 30_000;
const minLeaseMs = 1_000;
const maxLeaseMs = 600_000;
/** Most tasks one claim takes; more are reduced to it. */
export const maxTasksPerClaim = 100;

/** What a worker asks ClaimTask for. */
export interface ClaimRequest {
  readonly kinds: readonly string[];
  readonly workerId: string;
  /** Milliseconds; undefined: do not wait. */
  readonly maxWaitMs: number | undefined;
  /** Milliseconds; undefined: defaultLeaseMs. */
  readonly leaseMs: number | undefined;
  /** Most tasks to claim at once; 0: one. */
  readonly maxTasks: number;
}

/** The worker use cases: claim (waiting for work), report, complete. */
export class WorkersService {
  readonly #uow: UnitOfWork;
  readonly #lifecycle: TaskLifecycle;
  readonly #hub: NotificationHub;
  readonly #pollMs: number;

  constructor(uow: UnitOfWork, lifecycle: TaskLifecycle, hub: NotificationHub, pollMs: number) {
    this.#uow = uow;
    this.#lifecycle = lifecycle;
    this.#hub = hub;
    this.#pollMs = pollMs;
  }

  /**
   * Claims up to `maxTasks` tasks (none when nothing was ready in time), trying again on every notification of new work for the
   * tenant and at least every poll interval (leases expire without one)
   * until `maxWaitMs`, the deadline or the caller's departure. Each try is
   * a short transaction of its own: nothing is held while waiting.
   */
  async claim(scope: Scope, request: ClaimRequest, signal: AbortSignal): Promise<ClaimedTask[]> {
    if (request.maxWaitMs !== undefined && request.maxWaitMs < 0) throw InvalidArgumentError.field("max_wait", "must not be negative");
    const leaseMs = request.leaseMs ?? defaultLeaseMs;
    if (leaseMs < minLeaseMs || leaseMs > maxLeaseMs) throw InvalidArgumentError.field("lease_duration", "must be from 1 second to 10 minutes");
    if (request.maxTasks < 0) throw InvalidArgumentError.field("max_tasks", "must not be negative");
    const limit = Math.min(Math.max(request.maxTasks, 1), maxTasksPerClaim);
    let until = Date.now() + Math.min(request.maxWaitMs ?? 0, maxClaimWaitMs);
    // Answer (empty-handed) a little before the client's deadline rather than after it.
    if (scope.deadline !== undefined) until = Math.min(until, scope.deadline - 250);
    const subscription = this.#hub.subscribe(tasksChannel, scope.tenant);
    try {
      for (;;) {
        const claimed = await this.#claimOnce({ tenant: scope.tenant, audit: scope.audit }, request, leaseMs, limit);
        const left = until - Date.now();
        // The claim's own trace points at the operations it hands work from.
        if (claimed.length > 0) linkCallTo(claimed.map((c) => c.task.traceParent));
        if (claimed.length > 0 || left <= 0 || signal.aborted) return claimed;
        await subscription.waker.wait(Math.min(left, this.#pollMs), signal);
      }
    } finally {
      subscription.close();
    }
  }

  /**
   * One try: the tasks no other transaction holds; failing that, those of
   * the oldest ready task's operation once its holder is done with it (a
   * fan-out's siblings while another worker claims one), in a transaction
   * of its own so that it waits holding nothing.
   */
  async #claimOnce(scope: Scope, request: ClaimRequest, leaseMs: number, limit: number): Promise<ClaimedTask[]> {
    const { kinds, workerId } = request;
    // The call's scope without its deadline (the claim bounds its own wait),
    // but with its audit: a claim that takes tasks is a change.
    const claimed = await this.#uow.transact(scope, (tx) => this.#lifecycle.claim(tx, kinds, workerId, leaseMs, limit));
    if (claimed.length > 0) return claimed;
    const held = await this.#uow.read(scope, (tx) => this.#lifecycle.readyBehindHeldOperation(tx, kinds));
    if (held === undefined) return [];
    return this.#uow.transact(scope, (tx) => this.#lifecycle.claimFrom(tx, held, kinds, workerId, leaseMs, limit));
  }

  report(scope: Scope, taskId: string, leaseToken: string, report: ProgressReport): Promise<{ cancelRequested: boolean; leaseExpiresAt: Date }> {
    if (report.progress !== undefined && !(report.progress >= 0 && report.progress <= 1)) {
      throw InvalidArgumentError.field("progress", "must be from 0 to 1");
    }
    return this.#uow.transact(scope, (tx) => this.#lifecycle.report(tx, taskId, leaseToken, report));
  }

  complete(scope: Scope, taskId: string, leaseToken: string, outcome: { result: JsonObject } | { error: TaskFailure }): Promise<Operation> {
    return this.#uow.transact(scope, (tx) => this.#lifecycle.complete(tx, taskId, leaseToken, outcome));
  }
}
