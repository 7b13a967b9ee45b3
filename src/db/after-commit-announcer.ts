import { AsyncResource } from "node:async_hooks";
import type { NotificationHandler } from "./pg-notification-listener.js";

/** One notification: what a NOTIFY would carry. */
export interface Announcement {
  readonly channel: string;
  readonly payload: string;
}

/** Registers, inside a transaction, a notification to send once (and only if) it commits; the same one twice is sent once. */
export type Announce = (channel: string, payload: string) => void;

/** Takes the announcements of a committed transaction (UnitOfWork hands them over after its commit). */
export interface Announcer {
  announce(announcements: Iterable<Announcement>): void;
}

/** What the announcer needs from the database: LISTEN for this process, and one statement that NOTIFYs a set. */
export interface AnnouncerTransport {
  listen(channel: string, onMessage: NotificationHandler, onGap: () => void): Promise<() => Promise<void>>;
  /** Sends every (channels[i], payloads[i]) in one autocommit statement. */
  notifyAll(channels: readonly string[], payloads: readonly string[]): Promise<void>;
}

/** How long a sent notification's own echo is waited for before it is forgotten (it may never come: LISTEN down). */
const echoWindowMs = 10_000;

/**
 * Announces after commit, coalesced. A NOTIFY inside a transaction makes
 * its commit take PostgreSQL's cluster-wide notify lock, held through the
 * WAL flush: every transaction that notifies commits one at a time. So
 * transactions only register what they would announce, and this sends it
 * afterwards: this process's listeners hear it at once (local workers and
 * watchers lose no time), and the database hears it in ONE autocommit
 * statement per round — one round in flight at a time, the announcements
 * made meanwhile sent together, distinct ones once — for other instances.
 *
 * An announcement is a wake-up, never the data: if the process dies
 * between a commit and its announcement, waiters find the work at their
 * next poll, as they would after a lost LISTEN connection.
 *
 * The database sends this process's own notifications back to it; each
 * such echo is skipped once (counted per payload) rather than waking the
 * listeners a second time. Another instance's notification with the same
 * payload still wakes them: two arrive, one is skipped.
 */
export class AfterCommitAnnouncer implements Announcer {
  readonly #transport: AnnouncerTransport;
  readonly #onError: (err: unknown) => void;
  readonly #channels = new Map<string, { readonly handlers: Set<NotificationHandler>; readonly listening: Promise<() => Promise<void>> }>();
  readonly #gapHandlers = new Set<() => void>();
  /** Distinct announcements waiting for the next round, by channel then payload. */
  #pending = new Map<string, Set<string>>();
  #sending: Promise<void> | undefined;
  /** Echoes still expected from the database: `channel \0 payload` → count and when last sent. */
  readonly #echoes = new Map<string, { count: number; at: number }>();
  // One function, so the transport (which keeps a set of them) calls it once per gap however many channels listen.
  readonly #onGap = () => this.#gap();
  // A round serves every transaction that announced during it: it runs in the
  // async context of the announcer's creation, not of the call that happened
  // to start it (whose trace would otherwise claim the statement).
  readonly #context = new AsyncResource("AfterCommitAnnouncer");

  constructor(transport: AnnouncerTransport, onError: (err: unknown) => void) {
    this.#transport = transport;
    this.#onError = onError;
  }

  /**
   * Delivers `channel`'s notifications — this process's at once, other
   * processes' through the database — to `handler` until the returned
   * function is called. `onGap` as DatabaseHandle.listen's.
   */
  async listen(channel: string, handler: NotificationHandler, onGap?: () => void): Promise<() => Promise<void>> {
    let entry = this.#channels.get(channel);
    if (!entry) {
      const handlers = new Set<NotificationHandler>();
      const listening = this.#transport.listen(channel, (payload) => this.#fromDatabase(channel, payload), this.#onGap);
      entry = { handlers, listening };
      this.#channels.set(channel, entry);
      listening.catch(() => {
        if (this.#channels.get(channel) === entry) this.#channels.delete(channel);
      });
    }
    const { handlers, listening } = entry;
    const unlisten = await listening;
    handlers.add(handler);
    if (onGap !== undefined) this.#gapHandlers.add(onGap);
    return async () => {
      handlers.delete(handler);
      // Stryker disable next-line ConditionalExpression: deleting undefined from the set deletes nothing
      if (onGap !== undefined) this.#gapHandlers.delete(onGap);
      if (handlers.size > 0 || this.#channels.get(channel) !== entry) return;
      this.#channels.delete(channel);
      await unlisten();
    };
  }

  announce(announcements: Iterable<Announcement>): void {
    for (const { channel, payload } of announcements) {
      this.#deliver(channel, payload);
      let payloads = this.#pending.get(channel);
      if (!payloads) this.#pending.set(channel, (payloads = new Set()));
      payloads.add(payload);
    }
    // Idle: send at once. Busy: the round in flight sends these when it ends.
    // Nothing pending, no round: #send would end before #sending is assigned, leaving it set for good.
    if (this.#sending === undefined && this.#pending.size > 0) this.#sending = this.#context.runInAsyncScope(() => this.#send());
  }

  /** Resolves once everything announced so far has been sent (or failed to be). */
  async flushed(): Promise<void> {
    while (this.#sending) await this.#sending;
  }

  async #send(): Promise<void> {
    while (this.#pending.size > 0) {
      const round = this.#pending;
      this.#pending = new Map();
      const channels: string[] = [];
      const payloads: string[] = [];
      for (const [channel, set] of round) {
        for (const payload of set) {
          channels.push(channel);
          payloads.push(payload);
        }
      }
      this.#sweepEchoes();
      // Expected before the statement ends: the echo can arrive before its answer does.
      const listened = channels.map((channel, i) => (this.#channels.has(channel) ? this.#expectEcho(channel, payloads[i]!) : undefined));
      try {
        await this.#transport.notifyAll(channels, payloads);
      } catch (err) {
        // Stryker disable next-line ConditionalExpression: forgetting an echo never expected (undefined) finds none and does nothing
        for (const key of listened) if (key !== undefined) this.#forgetEcho(key);
        // Lost wake-ups only: other instances' waiters poll.
        this.#onError(err);
      }
    }
    this.#sending = undefined;
  }

  #fromDatabase(channel: string, payload: string): void {
    const key = `${channel}\0${payload}`;
    const echo = this.#echoes.get(key);
    if (echo !== undefined && Date.now() - echo.at < echoWindowMs) {
      this.#forgetEcho(key);
      return;
    }
    if (echo !== undefined) this.#echoes.delete(key);
    this.#deliver(channel, payload);
  }

  #deliver(channel: string, payload: string): void {
    for (const handler of this.#channels.get(channel)?.handlers ?? []) handler(payload);
  }

  #expectEcho(channel: string, payload: string): string {
    const key = `${channel}\0${payload}`;
    const now = Date.now();
    const echo = this.#echoes.get(key);
    // An echo past its window never came (its round was lost): it no longer counts, or another instance's same payload would be taken for it.
    if (echo === undefined || now - echo.at >= echoWindowMs) this.#echoes.set(key, { count: 1, at: now });
    else {
      echo.count += 1;
      echo.at = now;
    }
    return key;
  }

  #forgetEcho(key: string): void {
    const echo = this.#echoes.get(key);
    if (echo === undefined) return;
    if (--echo.count <= 0) this.#echoes.delete(key);
  }

  /** Forgets echoes past their window: a payload never sent again (an operation's sequence) would otherwise stay. */
  #sweepEchoes(): void {
    // Stryker disable next-line ConditionalExpression: equivalent but for cost: sweeping a small map changes nothing observable
    if (this.#echoes.size < 256) return;
    const now = Date.now();
    // Stryker disable next-line all: equivalent but for memory: an echo past its window is no longer taken for one (#fromDatabase)
    for (const [key, echo] of this.#echoes) if (now - echo.at >= echoWindowMs) this.#echoes.delete(key);
  }

  /** Notifications may have been lost, our echoes with them: expect none, and tell the listeners. */
  #gap(): void {
    this.#echoes.clear();
    for (const onGap of this.#gapHandlers) onGap();
  }
}
