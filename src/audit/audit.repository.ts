import { randomUUID } from "node:crypto";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { type Kysely, type Selectable, sql, type Transaction } from "kysely";
import type { Database } from "../db/schema.js";
import { afterKeyset, type SortKey } from "../db/keyset.js";
import type { AuditEvent, AuditEventKind, AuditFilter, AuditRange, NewAuditEvent } from "./audit-event.js";
import type { AuditEventTable } from "./audit-event.table.js";

/** Newest first: the order of ListAuditEvents. */
export const newestFirst: readonly SortKey[] = [
  { column: "time", direction: "desc" },
  { column: "id", direction: "desc" },
];
/** Oldest first: the order of an export. */
export const oldestFirst: readonly SortKey[] = [
  { column: "time", direction: "asc" },
  { column: "id", direction: "asc" },
];

/**
 * Queries over `audit_events` within one transaction and one tenant: the
 * change's own event, written in the change's transaction, and the reads of
 * AuditService. There is deliberately no update and no delete here.
 */
export class AuditRepository {
  readonly #db: Kysely<Database>;
  readonly #tenant: string;

  constructor(trx: Transaction<Database>, tenant: string) {
    this.#db = trx;
    this.#tenant = tenant;
  }

  /**
   * Inserts the event if — and only if — this transaction has written
   * something: PostgreSQL assigns a transaction id on the first write (or
   * row lock), so a transaction that only read (a replayed create, a claim
   * that found nothing) records no change. One statement either way.
   * Returns whether the event was written.
   */
  async insertIfChanged(event: NewAuditEvent): Promise<boolean> {
    const v = rowOf(event, this.#tenant);
    const { rows } = await sql<{ id: string }>`/* audit.insertIfChanged */
      insert into audit_events (tenant_id, id, time, kind, credential_kind, credential_id, subject, method, protocol,
        request_id, trace_id, resource_ids, outcome, client_address, user_agent, parameters, dropped_count)
      select ${v.tenant_id}, ${v.id}::uuid, ${v.time}::timestamptz, ${v.kind}, ${v.credential_kind}, ${v.credential_id},
        ${v.subject}, ${v.method}, ${v.protocol}, ${v.request_id}, ${v.trace_id}, ${v.resource_ids}::text[],
        ${v.outcome}::int, ${v.client_address}, ${v.user_agent}, ${v.parameters}::jsonb, ${v.dropped_count}::bigint
      where pg_current_xact_id_if_assigned() is not null
      returning id`.execute(this.#db);
    return rows.length > 0;
  }

  /** Up to `limit` events matching `filter`, newest first, after the keyset position `after` ([time, id]). */
  async list(filter: AuditFilter, limit: number, after: readonly unknown[] | undefined): Promise<AuditEvent[]> {
    let query = this.#db.selectFrom("audit_events").selectAll().where("tenant_id", "=", this.#tenant);
    if (filter.startTime) query = query.where("time", ">=", filter.startTime);
    if (filter.endTime) query = query.where("time", "<", filter.endTime);
    if (filter.credential) {
      query = query.where("credential_kind", "=", filter.credential.kind).where("credential_id", "=", filter.credential.id);
    }
    if (filter.subject !== undefined) query = query.where("subject", "=", filter.subject);
    if (filter.method !== undefined) query = query.where("method", "=", filter.method);
    if (filter.outcome !== undefined) query = query.where("outcome", "=", filter.outcome);
    if (filter.resourceId !== undefined) query = query.where(sql<boolean>`resource_ids @> array[${filter.resourceId}]::text[]`);
    if (after) query = query.where((eb) => afterKeyset(eb, newestFirst, after));
    const rows = await query.orderBy("time", "desc").orderBy("id", "desc").limit(limit).execute();
    return rows.map(toAuditEvent);
  }

  /** Up to `limit` events of `range`, oldest first, after the keyset position `after` ([time, id]). */
  async range(range: AuditRange, limit: number, after: readonly unknown[] | undefined): Promise<AuditEvent[]> {
    let query = this.#db.selectFrom("audit_events").selectAll().where("tenant_id", "=", this.#tenant);
    if (range.startTime) query = query.where("time", ">=", range.startTime);
    if (range.endTime) query = query.where("time", "<", range.endTime);
    if (after) query = query.where((eb) => afterKeyset(eb, oldestFirst, after));
    const rows = await query.orderBy("time", "asc").orderBy("id", "asc").limit(limit).execute();
    return rows.map(toAuditEvent);
  }
}

/** The insert values of an event for `tenant`, with a fresh id. */
export function rowOf(event: NewAuditEvent, tenant: string) {
  return {
    tenant_id: tenant,
    id: randomUUID(),
    time: event.time,
    kind: event.kind,
    credential_kind: event.credentialKind,
    credential_id: event.credentialId,
    subject: storable(event.subject),
    method: event.method,
    protocol: event.protocol,
    request_id: storable(event.requestId),
    trace_id: storable(event.traceId),
    resource_ids: event.resourceIds.map(storable),
    outcome: event.outcome,
    client_address: event.clientAddress,
    user_agent: storable(event.userAgent),
    // Stryker disable next-line ConditionalExpression: 'never null' is equivalent: a JSON null reads back as null like SQL NULL, and nothing filters on it
    parameters: event.parameters === null ? null : JSON.stringify(storableJson(event.parameters)),
    dropped_count: event.droppedCount,
  };
}

/**
 * Text PostgreSQL can store: `text` and `jsonb` refuse NUL and unpaired
 * surrogates. Validation keeps both out of what a request changes, but an
 * event records the request as sent — fields the call ignores (output-only
 * ones) included — so they are recorded as U+FFFD rather than failing the
 * change with them (found by the fuzzer: an IPA created with a NUL in its
 * output-only id answered INTERNAL).
 */
function storable(text: string): string {
  return text.toWellFormed().replaceAll("\u0000", "\uFFFD");
}

function storableJson(value: JsonValue): JsonValue {
  if (typeof value === "string") return storable(value);
  if (Array.isArray(value)) return value.map(storableJson);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [storable(k), storableJson(v)]));
  return value;
}

function toAuditEvent(row: Selectable<AuditEventTable>): AuditEvent {
  return {
    id: row.id,
    time: row.time,
    tenant: row.tenant_id,
    kind: row.kind as AuditEventKind,
    credentialKind: row.credential_kind,
    credentialId: row.credential_id,
    subject: row.subject,
    method: row.method,
    protocol: row.protocol,
    requestId: row.request_id,
    traceId: row.trace_id,
    resourceIds: row.resource_ids,
    outcome: row.outcome,
    clientAddress: row.client_address,
    userAgent: row.user_agent,
    parameters: (row.parameters ?? null) as JsonObject | null,
    droppedCount: Number(row.dropped_count),
  };
}
