import type { Logger } from "pino";
import type { DatabaseHandle } from "../db/database.js";
import { operationEventsChannel } from "./operation.repository.js";
import { tasksChannel } from "./task.repository.js";
import { Waker } from "./waker.js";

/** A registration with the hub; close it when the waiter goes away. */
export interface Subscription {
  readonly waker: Waker;
  /** Whether other waiters are registered under the same key (each notification wakes them all). */
  shared(): boolean;
  close(): void;
}

/**
 * The gateway process's one ear on the database: a single LISTEN (per
 * channel) for the whole process, dispatching each notification to the
 * in-process waiters registered under its key — a watched operation
 * (`<tenant>:<operation id>`) or a tenant's waiting workers (`<tenant>`).
 * Payloads end with one more `:`-separated part (the sequence, the task
 * kind) that the key leaves out.
 */
export class NotificationHub {
  readonly #waiters = new Map<string, Set<Waker>>();
  readonly #unlisten: Array<() => Promise<void>> = [];

  private constructor() {}

  /** Listens on the operations channels of `database`. */
  static async start(database: DatabaseHandle, log: Logger): Promise<NotificationHub> {
    const hub = new NotificationHub();
    for (const channel of [operationEventsChannel, tasksChannel]) {
      const unlisten = await database.listen(channel, (payload) => hub.#dispatch(channel, payload)).catch((err: unknown) => {
        // Still correct without notifications, only slower: waiters poll.
        log.warn({ err: err instanceof Error ? err.message : String(err), channel }, "cannot LISTEN; relying on polling");
        return undefined;
      });
      if (unlisten) hub.#unlisten.push(unlisten);
    }
    return hub;
  }

  /** Wakes on notifications of `channel` whose payload starts with `key` and one more part. */
  subscribe(channel: string, key: string): Subscription {
    const id = `${channel}\0${key}`;
    let set = this.#waiters.get(id);
    if (!set) this.#waiters.set(id, (set = new Set()));
    const waker = new Waker();
    set.add(waker);
    const waiters = set;
    return {
      waker,
      shared: () => waiters.size > 1,
      close: () => {
        waiters.delete(waker);
        if (waiters.size === 0 && this.#waiters.get(id) === waiters) this.#waiters.delete(id);
      },
    };
  }

  /** How many waiters are registered (for tests: a closed stream leaves none). */
  get size(): number {
    let n = 0;
    for (const set of this.#waiters.values()) n += set.size;
    return n;
  }

  async close(): Promise<void> {
    await Promise.all(this.#unlisten.splice(0).map((u) => u().catch(() => undefined)));
  }

  #dispatch(channel: string, payload: string): void {
    const cut = payload.lastIndexOf(":");
    if (cut < 0) return;
    for (const waker of this.#waiters.get(`${channel}\0${payload.slice(0, cut)}`) ?? []) waker.notify();
  }
}
