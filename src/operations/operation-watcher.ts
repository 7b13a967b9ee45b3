import type { UnitOfWork } from "../db/unit-of-work.js";
import type { Scope } from "../shared/scope.js";
import type { NotificationHub } from "./notification-hub.js";
import { InvalidArgumentError } from "../shared/errors.js";
import { isFinal, maxSequence, type Operation, type OperationEvent } from "./operation.js";
import { operationEventsChannel } from "./operation.repository.js";

/** One message of a watch: the operation first, then its events, with keep-alives while idle. */
export type WatchItem =
  | { readonly type: "operation"; readonly operation: Operation }
  | { readonly type: "event"; readonly event: OperationEvent }
  | { readonly type: "keepAlive"; readonly time: Date };

/** Timing of watches: from the configuration, short in tests. */
export interface WatchSettings {
  /** Read the event table at least this often, notification or not. */
  readonly pollMs: number;
  /** Send a keep-alive after this long without a message. */
  readonly keepAliveMs: number;
  /** Events read per query; the next batch is read only once the client took these. */
  readonly batchSize: number;
}

/**
 * Streams an operation's events from the event table — the source of truth
 * — after a sequence number. A notification only says "read again now";
 * polling covers lost ones. Reading is pulled by the consumer one bounded
 * batch at a time, so a slow client makes the watch fall behind (and catch
 * up from the table), never makes the server buffer.
 */
export class OperationWatcher {
  readonly #uow: UnitOfWork;
  readonly #hub: NotificationHub;
  readonly #settings: WatchSettings;

  constructor(uow: UnitOfWork, hub: NotificationHub, settings: WatchSettings) {
    this.#uow = uow;
    this.#hub = hub;
    this.#settings = settings;
  }

  /**
   * Ends after the completion event, or throws `signal`'s reason when it
   * aborts first (the deadline, the instance draining, the client leaving):
   * a watch cut short never ends as if the operation were done, so a client
   * that does not enforce deadlines itself still knows to resume.
   */
  async *watch(scope: Scope, id: string, afterSequence: number, signal: AbortSignal): AsyncGenerator<WatchItem> {
    // Checked before anything is sent: a sequence no operation can reach would
    // otherwise fail later, as a database error, on the first read of events.
    if (afterSequence > maxSequence) throw InvalidArgumentError.field("after_sequence", `must be at most ${maxSequence}`);
    // Subscribed before the first read: a notification in between is not missed.
    const subscription = this.#hub.subscribe(operationEventsChannel, `${scope.tenant}:${id}`);
    const unscoped = { tenant: scope.tenant, trace: scope.trace };
    try {
      const operation = await this.#uow.read(scope, (tx) => tx.operations.get(id));
      yield { type: "operation", operation };
      if (isFinal(operation.state) && afterSequence >= operation.lastSequence) return;
      let cursor = afterSequence;
      let lastSent = Date.now();
      while (!signal.aborted) {
        // Statements of a long watch are bounded by the statement timeout, not by the stream's deadline.
        const events = await this.#uow.read(unscoped, (tx) => tx.operations.events(id, cursor, this.#settings.batchSize));
        for (const event of events) {
          yield { type: "event", event };
          cursor = event.sequence;
          lastSent = Date.now();
          if (event.payload.type === "completion") return;
        }
        if (events.length === this.#settings.batchSize) continue;
        const idle = this.#settings.keepAliveMs - (Date.now() - lastSent);
        if (idle <= 0) {
          yield { type: "keepAlive", time: new Date() };
          lastSent = Date.now();
          continue;
        }
        await subscription.waker.wait(Math.min(this.#settings.pollMs, idle), signal);
      }
      signal.throwIfAborted();
    } finally {
      subscription.close();
    }
  }
}
