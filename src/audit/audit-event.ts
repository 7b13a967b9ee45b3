import type { JsonObject } from "@bufbuild/protobuf";

/** What an audit event records: a change, a refused call, or refusals dropped unrecorded. */
export type AuditEventKind = "mutation" | "refusal" | "dropped";

/** One audited call, as stored. Codes are google.rpc.Code numbers (0: OK). */
export interface AuditEvent {
  readonly id: string;
  readonly time: Date;
  readonly tenant: string;
  readonly kind: AuditEventKind;
  readonly credentialKind: string;
  readonly credentialId: string;
  readonly subject: string;
  /** `package.Service/Method`. */
  readonly method: string;
  readonly protocol: string;
  readonly requestId: string;
  readonly traceId: string;
  readonly resourceIds: readonly string[];
  readonly outcome: number;
  readonly clientAddress: string;
  readonly userAgent: string;
  /** The request's parameters without secrets; null for refusals. */
  readonly parameters: JsonObject | null;
  readonly droppedCount: number;
}

/** An event to store: its id is assigned when it is written. */
export type NewAuditEvent = Omit<AuditEvent, "id">;

/**
 * The audit of a change, carried by the scope of a mutating call (see
 * Scope.audit): the unit of work asks it for the event of each transaction
 * that wrote something, with the ids of the rows the transaction wrote, and
 * inserts that event before committing.
 */
export interface ChangeAudit {
  eventFor(touchedIds: Iterable<string>, time: Date): NewAuditEvent;
}

/** Filters of ListAuditEvents; every one set must match. */
export interface AuditFilter {
  readonly startTime?: Date | undefined;
  readonly endTime?: Date | undefined;
  readonly credential?: { readonly kind: string; readonly id: string } | undefined;
  readonly subject?: string | undefined;
  readonly method?: string | undefined;
  readonly outcome?: number | undefined;
  readonly resourceId?: string | undefined;
}

/** A time range of an export: [start, end). */
export interface AuditRange {
  readonly startTime?: Date | undefined;
  readonly endTime?: Date | undefined;
}
