import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type AuditEvent as AuditEventMessage,
  AuditEvent_Kind,
  AuditEventSchema,
  type AuditService as AuditServiceDesc,
  ExportAuditEventsResponseSchema,
  ListAuditEventsResponseSchema,
} from "../../gen/anvil/audit/v1/audit_pb.js";
import { requestContext } from "../rpc/request-context.js";
import { optionalDate } from "../rpc/timestamps.js";
import { InvalidArgumentError } from "../shared/errors.js";
import type { AuditEvent, AuditEventKind, AuditFilter } from "./audit-event.js";
import type { AuditService } from "./audit.service.js";

/** AuditService over the wire: proto ⇄ domain, nothing else. */
export function auditHandler(audit: AuditService): ServiceImpl<typeof AuditServiceDesc> {
  return {
    async listAuditEvents(req, ctx) {
      const filter: AuditFilter = {
        startTime: optionalDate(req.startTime),
        endTime: optionalDate(req.endTime),
        credential: req.credential === "" ? undefined : credentialOf(req.credential),
        subject: req.subject || undefined,
        method: req.method || undefined,
        outcome: req.outcome,
        resourceId: req.resourceId || undefined,
      };
      const page = await audit.list(requestContext(ctx), filter, { pageSize: req.pageSize, pageToken: req.pageToken });
      return create(ListAuditEventsResponseSchema, { events: page.items.map(toMessage), nextPageToken: page.nextPageToken });
    },
    async *exportAuditEvents(req, ctx) {
      for await (const batch of audit.export(requestContext(ctx), { startTime: optionalDate(req.startTime), endTime: optionalDate(req.endTime) })) {
        yield create(ExportAuditEventsResponseSchema, { events: batch.map(toMessage) });
      }
    },
  };
}


/** `kind:id` as the credential filter names it (ids may contain colons: OIDC issuer and subject). */
function credentialOf(value: string): { kind: string; id: string } {
  const at = value.indexOf(":");
  if (at <= 0 || at === value.length - 1) throw InvalidArgumentError.field("credential", "must be kind:id, e.g. api_key:<uuid>");
  return { kind: value.slice(0, at), id: value.slice(at + 1) };
}

const kinds: Record<AuditEventKind, AuditEvent_Kind> = {
  mutation: AuditEvent_Kind.MUTATION,
  refusal: AuditEvent_Kind.REFUSAL,
  dropped: AuditEvent_Kind.DROPPED,
};

function toMessage(e: AuditEvent): AuditEventMessage {
  return create(AuditEventSchema, {
    id: e.id,
    time: timestampFromDate(e.time),
    kind: kinds[e.kind],
    credentialKind: e.credentialKind,
    credentialId: e.credentialId,
    subject: e.subject,
    method: e.method,
    protocol: e.protocol,
    requestId: e.requestId,
    traceId: e.traceId,
    resourceIds: [...e.resourceIds],
    outcome: e.outcome,
    clientAddress: e.clientAddress,
    userAgent: e.userAgent,
    ...(e.parameters !== null && { parameters: e.parameters as JsonObject }),
    droppedCount: BigInt(e.droppedCount),
  });
}
