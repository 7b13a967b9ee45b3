import type { Logger } from "pino";
import type { NewAuditEvent } from "./audit-event.js";
import type { AuditStore } from "./audit-store.repository.js";

/** A credential a refused caller presented, named by kind and id before anything about it was verified. */
export interface CredentialClaim {
  readonly kind: "api_key" | "service_account";
  readonly id: string;
}

/**
 * A refused call waiting to be written: its event without a tenant, and
 * either the tenant (the caller was authenticated: refused by a permission
 * or a limit) or the credential it claimed, whose tenant is looked up when
 * the batch is written — off the request path.
 */
export interface PendingRefusal {
  readonly event: Omit<NewAuditEvent, "tenant">;
  readonly tenant: string | undefined;
  readonly claim: CredentialClaim | undefined;
}

/** What the queue reports (the metrics). */
export interface AuditQueueEvents {
  watch(depth: () => number): void;
  dropped(reason: "overflow" | "write_failed", count: number): void;
  written(count: number): void;
  platform(count: number): void;
}

/** Options of AuditQueue. */
export interface AuditQueueOptions {
  /** Refusals held at most; more are dropped and counted. */
  readonly capacity: number;
  /** A batch is written when this many wait… */
  readonly batchSize: number;
  /** …or this long after the first of them arrived. */
  readonly flushMs: number;
  /** The tenant a claimed credential belongs to, if it names one (a known key id, an API key's embedded id). */
  readonly tenantOf: (claim: CredentialClaim) => Promise<string | undefined>;
  readonly events: AuditQueueEvents;
}

/** Dropped refusals are counted per tenant (or claimed credential), at most this many distinct ones. */
const maxDropKeys = 1000;

/**
 * Writes refusals to the audit log off the request path: `add` only pushes
 * onto a bounded in-memory queue, which is written in batches (every
 * `flushMs`, or at once when `batchSize` wait), one INSERT per batch — so a
 * flood of bad requests cannot become a flood of synchronous writes. When
 * the queue is full a refusal is dropped, and the number dropped is itself
 * written, as a `dropped` event of the tenant they belonged to. A refusal
 * whose credential names no tenant is a platform event: logged and counted,
 * written to no tenant's audit.
 */
export class AuditQueue {
  readonly #store: AuditStore;
  readonly #log: Logger;
  readonly #options: AuditQueueOptions;
  #queue: PendingRefusal[] = [];
  /** Dropped refusals by who they belonged to (`t:<tenant>` or a claim), with one of them as the template of the count's event. */
  #drops = new Map<string, { count: number; sample: PendingRefusal }>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #closed = false;

  constructor(store: AuditStore, log: Logger, options: AuditQueueOptions) {
    this.#store = store;
    this.#log = log;
    this.#options = options;
    options.events.watch(() => this.#queue.length);
  }

  /** Refusals waiting to be written. */
  get depth(): number {
    return this.#queue.length;
  }

  /** Queues a refusal; never waits, never throws. */
  add(refusal: PendingRefusal): void {
    if (this.#closed) return;
    if (this.#queue.length >= this.#options.capacity) {
      this.#drop(refusal);
    } else {
      this.#queue.push(refusal);
    }
    if (this.#queue.length >= this.#options.batchSize) this.#flushSoon(0);
    else this.#flushSoon(this.#options.flushMs);
  }

  /** Writes everything queued so far (and the drop counts); resolves when written. */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
    while (this.#queue.length > 0 || this.#drops.size > 0) {
      this.#flushing = this.#writeBatch().finally(() => {
        this.#flushing = undefined;
      });
      await this.#flushing;
    }
  }

  /** Stops accepting refusals and writes those queued. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.flush();
  }

  #drop(refusal: PendingRefusal): void {
    this.#options.events.dropped("overflow", 1);
    const key = refusal.tenant !== undefined ? `t:${refusal.tenant}` : refusal.claim ? `${refusal.claim.kind}:${refusal.claim.id}` : "platform";
    const entry = this.#drops.get(key);
    if (entry) entry.count += 1;
    else if (this.#drops.size < maxDropKeys) this.#drops.set(key, { count: 1, sample: refusal });
    else this.#options.events.platform(1);
  }

  #flushSoon(ms: number): void {
    if (this.#timer !== undefined && ms > 0) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush().catch((err: unknown) => this.#log.error({ err }, "audit queue flush failed"));
    }, ms);
    this.#timer.unref();
  }

  async #writeBatch(): Promise<void> {
    const batch = this.#queue.splice(0, this.#options.batchSize);
    const drops = [...this.#drops.values()];
    this.#drops = new Map();
    const rows: Array<{ tenant: string; event: NewAuditEvent }> = [];
    let platform = 0;
    const tenants = new Map<string, Promise<string | undefined>>();
    const tenantOf = (r: PendingRefusal): Promise<string | undefined> => {
      if (r.tenant !== undefined) return Promise.resolve(r.tenant);
      if (r.claim === undefined) return Promise.resolve(undefined);
      const key = `${r.claim.kind}:${r.claim.id}`;
      let found = tenants.get(key);
      if (found === undefined) {
        found = this.#options.tenantOf(r.claim).catch(() => undefined);
        tenants.set(key, found);
      }
      return found;
    };
    for (const r of batch) {
      const tenant = await tenantOf(r);
      if (tenant === undefined) {
        platform += 1;
        this.#log.info({ audit: "refusal", rpc: r.event.method, code: r.event.outcome, client: r.event.clientAddress, request_id: r.event.requestId }, "platform refusal");
        continue;
      }
      rows.push({ tenant, event: { ...r.event, tenant } });
    }
    for (const d of drops) {
      const tenant = await tenantOf(d.sample);
      if (tenant === undefined) {
        platform += d.count;
        this.#log.warn({ audit: "dropped", count: d.count }, "platform refusals dropped: audit queue full");
        continue;
      }
      rows.push({
        tenant,
        event: { ...d.sample.event, tenant, kind: "dropped", time: new Date(), droppedCount: d.count, requestId: "", traceId: "", parameters: null, resourceIds: [] },
      });
    }
    if (platform > 0) this.#options.events.platform(platform);
    try {
      await this.#store.insertMany(rows);
      this.#options.events.written(rows.length);
    } catch (err) {
      this.#options.events.dropped("write_failed", rows.length);
      this.#log.error({ err, count: rows.length }, "audit refusals could not be written");
    }
  }
}
