import type { Repositories } from "../db/repositories.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import { AbortedError, InvalidArgumentError } from "../shared/errors.js";
import type { Scope } from "../shared/scope.js";
import type { NotificationHub, Subscription } from "./notification-hub.js";
import type { Operation } from "./operation.js";
import type { Completion, CompletionAnswer, TaskOutcomeReport } from "./batch-completion.js";
import type { ProgressReport, TaskLifecycle } from "./task-lifecycle.js";
import type { ClaimedTask } from "./task.js";
import { tasksChannel } from "./task.repository.js";
import { linkCallTo } from "../tracing/tracing.js";
import type { Waker } from "./waker.js";

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

/** What a worker asks StreamTasks for. */
export interface StreamRequest {
  readonly kinds: readonly string[];
  readonly workerId: string;
  /** Milliseconds; undefined: defaultLeaseMs. */
  readonly leaseMs: number | undefined;
  /** Most tasks leased to the worker at once; 0: one. */
  readonly maxInFlight: number;
  /** Milliseconds until the stream ends; undefined or 0: until the deadline. */
  readonly maxDurationMs: number | undefined;
}

/** What a claim or a stream asks for, as #open checks it. */
interface ClaimAsk {
  readonly leaseMs: number | undefined;
  /** The most tasks at once (max_tasks, max_in_flight); 0: one. */
  readonly count: { readonly field: string; readonly value: number };
  /** How long to wait (max_wait, max_duration), for its check. */
  readonly wait: { readonly field: string; readonly ms: number | undefined };
  /** When to stop waiting, by the request alone (the deadline is applied by #open). */
  readonly until: number;
}

/** A claim or stream under way: its checked limits and its subscription to new work. */
interface ClaimSession {
  readonly scope: Scope;
  readonly leaseMs: number;
  readonly limit: number;
  readonly until: number;
  readonly subscription: Subscription;
}

/** One message of a task stream: tasks just claimed, or none (a keep-alive). */
export type StreamItem = { readonly type: "tasks"; readonly tasks: ClaimedTask[] } | { readonly type: "keepAlive"; readonly time: Date };

/** The worker use cases: claim (waiting for work, or streamed), report, complete. */
export class WorkersService {
  readonly #uow: UnitOfWork;
  readonly #lifecycle: TaskLifecycle;
  readonly #hub: NotificationHub;
  readonly #pollMs: number;
  readonly #keepAliveMs: number;
  /**
   * Tasks a stream of this instance sent, by id, with the stream's waker: a
   * completion here wakes the stream at once to send the next task (one on
   * another instance is seen at the stream's next poll). Entries go with the
   * completion or the stream.
   */
  readonly #streamed = new Map<string, Waker>();

  constructor(uow: UnitOfWork, lifecycle: TaskLifecycle, hub: NotificationHub, pollMs: number, keepAliveMs = 15_000) {
    this.#uow = uow;
    this.#lifecycle = lifecycle;
    this.#hub = hub;
    this.#pollMs = pollMs;
    this.#keepAliveMs = keepAliveMs;
  }

  /**
   * Sends tasks of `kinds` as they are queued while fewer than
   * `maxInFlight` are leased to the worker: each try a claim of the free
   * capacity (one count and one pick, in one transaction), woken by
   * notifications of new work, completions of the stream's tasks on this
   * instance, and at least every poll interval; a keep-alive after
   * keepAliveMs without a message. Ends with the deadline or the caller's
   * departure.
   */
  async *stream(scope: Scope, request: StreamRequest, signal: AbortSignal): AsyncGenerator<StreamItem> {
    const session = this.#open(scope, {
      leaseMs: request.leaseMs,
      count: { field: "max_in_flight", value: request.maxInFlight },
      wait: { field: "max_duration", ms: request.maxDurationMs },
      // Without max_duration (or 0): until the deadline.
      until: request.maxDurationMs ? Date.now() + request.maxDurationMs : Infinity,
    });
    const { subscription, until } = session;
    let lastSent = Date.now();
    let woken = false;
    try {
      while (!signal.aborted && Date.now() < until) {
        const claimed = await this.#claimOnce(session, request, woken, request.workerId);
        woken = false;
        if (claimed.length > 0) {
          linkCallTo(scope.trace, claimed.map((c) => c.task.traceParent));
          for (const c of claimed) this.#streamed.set(c.task.id, subscription.waker);
          yield { type: "tasks", tasks: claimed };
          lastSent = Date.now();
          continue;
        }
        if (Date.now() - lastSent >= this.#keepAliveMs) {
          yield { type: "keepAlive", time: new Date() };
          lastSent = Date.now();
        }
        const wait = Math.min(this.#pollMs, lastSent + this.#keepAliveMs - Date.now(), until - Date.now());
        await subscription.waker.wait(wait, signal);
        woken = true;
      }
    } finally {
      subscription.close();
      for (const [id, waker] of this.#streamed) if (waker === subscription.waker) this.#streamed.delete(id);
    }
  }

  /**
   * Claims up to `maxTasks` tasks (none when nothing was ready in time), trying again on every notification of new work for the
   * tenant and at least every poll interval (leases expire without one)
   * until `maxWaitMs`, the deadline or the caller's departure. Each try is
   * a short transaction of its own: nothing is held while waiting.
   */
  async claim(scope: Scope, request: ClaimRequest, signal: AbortSignal): Promise<ClaimedTask[]> {
    const session = this.#open(scope, {
      leaseMs: request.leaseMs,
      count: { field: "max_tasks", value: request.maxTasks },
      wait: { field: "max_wait", ms: request.maxWaitMs },
      until: Date.now() + Math.min(request.maxWaitMs ?? 0, maxClaimWaitMs),
    });
    try {
      for (let woken = false; ; woken = true) {
        const claimed = await this.#claimOnce(session, request, woken);
        const left = session.until - Date.now();
        // The claim's own trace points at the operations it hands work from.
        if (claimed.length > 0) linkCallTo(scope.trace, claimed.map((c) => c.task.traceParent));
        if (claimed.length > 0 || left <= 0 || signal.aborted) return claimed;
        await session.subscription.waker.wait(Math.min(left, this.#pollMs), signal);
      }
    } finally {
      session.subscription.close();
    }
  }

  /**
   * What ClaimTask and StreamTasks share before their first try: the
   * request's limits checked (INVALID_ARGUMENT naming the field), the
   * lease, the most tasks at once, when to stop waiting — a little before
   * the client's deadline rather than after it, so the answer or the
   * stream's end is clean — and a subscription to the tenant's new work,
   * which the caller closes.
   */
  #open(scope: Scope, asked: ClaimAsk): ClaimSession {
    if (asked.wait.ms !== undefined && asked.wait.ms < 0) throw InvalidArgumentError.field(asked.wait.field, "must not be negative");
    const leaseMs = leaseMsOf(asked.leaseMs);
    if (asked.count.value < 0) throw InvalidArgumentError.field(asked.count.field, "must not be negative");
    return {
      // The call's scope without its deadline (the claim bounds its own wait),
      // but with its audit: a claim that takes tasks is a change.
      scope: { tenant: scope.tenant, audit: scope.audit, trace: scope.trace },
      leaseMs,
      limit: Math.min(Math.max(asked.count.value, 1), maxTasksPerClaim),
      until: scope.deadline === undefined ? asked.until : Math.min(asked.until, scope.deadline - 250),
      subscription: this.#hub.subscribe(tasksChannel, scope.tenant),
    };
  }

  /**
   * One try (after a wake-up shared with other waiters, only if
   * claimable() says it may find something): the tasks no other claim holds, of operations no completion,
   * report or cancel holds; failing that, those of the oldest ready task's
   * operation once its holder is done with it (a fan-out's siblings while a
   * sibling's completion holds it), in a transaction of its own so that it
   * waits holding nothing.
   */
  async #claimOnce(session: ClaimSession, request: Pick<ClaimRequest, "kinds" | "workerId">, woken: boolean, inFlightOf?: string): Promise<ClaimedTask[]> {
    try {
      return await this.#tryClaim(session, request, woken, inFlightOf);
    } catch (err) {
      // A claim can lose a deadlock to a completion. Its pick keeps the lock of a
      // task another claim leased a moment before (PostgreSQL keeps the lock of a
      // row that fails its recheck) and, sharing that task's operation, waits for
      // the completion that holds it — which waits for that task. Nothing was
      // claimed: this try found nothing, and the next (a wake-up, the poll) tries
      // again, instead of the worker's ClaimTask or whole stream failing ABORTED.
      if (err instanceof AbortedError && err.reason === "TRANSACTION_CONFLICT") return [];
      throw err;
    }
  }

  async #tryClaim(session: ClaimSession, request: Pick<ClaimRequest, "kinds" | "workerId">, woken: boolean, inFlightOf?: string): Promise<ClaimedTask[]> {
    const { kinds, workerId } = request;
    const { scope, leaseMs, limit } = session;
    // Every waiting worker of the tenant wakes for each notification (and each
    // poll): one read tells most of them there is nothing for them, where a
    // claim's transaction took five statements to find it. A worker waiting
    // alone skips it: its wake-up is most likely its task, one round trip sooner.
    const crowded = woken && session.subscription.shared();
    if (crowded && !(await this.#uow.read(scope, (tx) => this.#lifecycle.claimable(tx, kinds)))) return [];
    // A stream claims only its worker's free capacity, counted in the claim's transaction.
    const free = async (tx: Repositories) => (inFlightOf === undefined ? limit : limit - (await tx.tasks.leasedTo(inFlightOf)));
    let full = false;
    const claimed = await this.#uow.transact(scope, async (tx) => {
      const n = await free(tx);
      full = n <= 0;
      return full ? [] : this.#lifecycle.claim(tx, kinds, workerId, leaseMs, n);
    });
    if (claimed.length > 0 || full) return claimed;
    const held = await this.#uow.read(scope, (tx) => this.#lifecycle.readyBehindHeldOperation(tx, kinds));
    if (held === undefined) return [];
    return this.#uow.transact(scope, async (tx) => {
      const n = await free(tx);
      return n <= 0 ? [] : this.#lifecycle.claimFrom(tx, held, kinds, workerId, leaseMs, n);
    });
  }

  /** Wakes the streams of this instance that sent these tasks: they have room for more. */
  #freed(taskIds: readonly string[]): void {
    for (const id of taskIds) {
      this.#streamed.get(id)?.notify();
      this.#streamed.delete(id);
    }
  }

  report(scope: Scope, taskId: string, leaseToken: string, report: ProgressReport): Promise<{ cancelRequested: boolean; leaseExpiresAt: Date }> {
    if (report.progress !== undefined && !(report.progress >= 0 && report.progress <= 1)) {
      throw InvalidArgumentError.field("progress", "must be from 0 to 1");
    }
    return this.#uow.transact(scope, (tx) => this.#lifecycle.report(tx, taskId, leaseToken, report));
  }

  async complete(scope: Scope, taskId: string, leaseToken: string, outcome: TaskOutcomeReport): Promise<Operation> {
    const operation = await this.#uow.transact(scope, (tx) => this.#lifecycle.complete(tx, taskId, leaseToken, outcome));
    this.#freed([taskId]);
    return operation;
  }

  /**
   * Completes up to maxCompletionsPerBatch tasks in one transaction, each
   * fenced by its own lease: a refused one (NOT_FOUND, LEASE_LOST) is
   * answered with its error and the others still count (see
   * BatchCompletion: the batch's operations are locked in id order, then
   * their tasks, so two batches never deadlock). Answers in request order.
   */
  async completeBatch(scope: Scope, completions: readonly Completion[]): Promise<CompletionAnswer[]> {
    if (completions.length > maxCompletionsPerBatch) throw InvalidArgumentError.field("requests", `at most ${maxCompletionsPerBatch} completions per call`);
    const answers = await this.#uow.transact(scope, (tx) => this.#lifecycle.completeAll(tx, completions));
    this.#freed(answers.filter((a) => "operation" in a).map((a) => a.taskId));
    return answers;
  }
}

/** The lease length asked for, or the default; INVALID_ARGUMENT outside 1 second to 10 minutes. */
function leaseMsOf(asked: number | undefined): number {
  const leaseMs = asked ?? defaultLeaseMs;
  if (leaseMs < minLeaseMs || leaseMs > maxLeaseMs) throw InvalidArgumentError.field("lease_duration", "must be from 1 second to 10 minutes");
  return leaseMs;
}

/** Most completions one BatchCompleteTasks takes (the proto's max_items says the same). */
export const maxCompletionsPerBatch = 100;
