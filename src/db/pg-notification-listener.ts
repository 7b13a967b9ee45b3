import pg from "pg";
import type { Logger } from "pino";

/** Receives the payload of one NOTIFY. */
export type NotificationHandler = (payload: string) => void;

/**
 * One dedicated PostgreSQL connection that LISTENs on behalf of the whole
 * process — never a pooled one, which would be handed to other work. When
 * the connection fails it reconnects with backoff (100 ms doubling to 5 s)
 * and listens again; notifications sent meanwhile are lost, which is why
 * the event tables, not notifications, are the source of truth and
 * listeners also poll.
 */
export class PgNotificationListener {
  readonly #url: string;
  readonly #log: Logger;
  readonly #handlers = new Map<string, Set<NotificationHandler>>();
  readonly #gapHandlers = new Set<() => void>();
  #client: pg.Client | undefined;
  #connecting: Promise<void> | undefined;
  #retryMs = 100;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #connectedBefore = false;

  constructor(url: string, log: Logger) {
    this.#url = url;
    this.#log = log;
  }

  /**
   * Starts delivering `channel`'s notifications to `handler`; resolves once
   * LISTEN is in place. `onGap` runs when the connection is lost and again
   * when it listens anew: notifications sent in between are gone.
   */
  async listen(channel: string, handler: NotificationHandler, onGap?: () => void): Promise<() => Promise<void>> {
    let handlers = this.#handlers.get(channel);
    const first = handlers === undefined;
    if (!handlers) this.#handlers.set(channel, (handlers = new Set()));
    handlers.add(handler);
    if (onGap !== undefined) this.#gapHandlers.add(onGap);
    await this.#connect();
    // Stryker disable next-line ConditionalExpression: equivalent but for cost: LISTEN on a channel already listened to changes nothing
    if (first && this.#client) await this.#client.query(`LISTEN ${quote(channel)}`);
    return async () => {
      handlers.delete(handler);
      // Stryker disable next-line ConditionalExpression: deleting undefined from the set deletes nothing
      if (onGap !== undefined) this.#gapHandlers.delete(onGap);
      if (handlers.size > 0 || this.#handlers.get(channel) !== handlers) return;
      this.#handlers.delete(channel);
      await this.#client?.query(`UNLISTEN ${quote(channel)}`).catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }

  #connect(): Promise<void> {
    if (this.#client || this.#closed) return Promise.resolve();
    this.#connecting ??= this.#open().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  async #open(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#url, keepAlive: true, application_name: "anvil-listener", connectionTimeoutMillis: 5_000 });
    const lost = (err?: Error) => {
      if (this.#client !== client) return;
      this.#client = undefined;
      client.end().catch(() => undefined);
      // Stryker disable next-line ConditionalExpression: close() clears #client before ending it, so a closed listener returned above already
      if (this.#closed) return;
      this.#log.warn({ err: err?.message, retryMs: this.#retryMs }, "notification listener lost its connection; reconnecting");
      this.#gap();
      this.#scheduleReconnect();
    };
    client.on("error", lost);
    // Stryker disable next-line StringLiteral,ArrowFunction: node-postgres reports an end it did not ask for as an error first (lost() then ignores the end)
    client.on("end", () => lost());
    client.on("notification", (n) => {
      for (const handler of this.#handlers.get(n.channel) ?? []) handler(n.payload ?? "");
    });
    try {
      await client.connect();
      for (const channel of this.#handlers.keys()) await client.query(`LISTEN ${quote(channel)}`);
    } catch (err) {
      client.end().catch(() => undefined);
      if (this.#closed) return;
      this.#log.warn({ err: err instanceof Error ? err.message : String(err), retryMs: this.#retryMs }, "notification listener cannot connect; retrying");
      this.#scheduleReconnect();
      return;
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
    this.#retryMs = 100;
    if (this.#connectedBefore) this.#gap();
    this.#connectedBefore = true;
  }

  #gap(): void {
    for (const onGap of this.#gapHandlers) onGap();
  }

  #scheduleReconnect(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#connect(), this.#retryMs);
    this.#timer.unref();
    this.#retryMs = Math.min(this.#retryMs * 2, 5_000);
  }
}

/** Channel names are ours (constants), but quote them anyway: LISTEN takes no parameters. */
function quote(channel: string): string {
  return `"${channel.replaceAll('"', '""')}"`;
}
