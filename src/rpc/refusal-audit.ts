import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { HeaderSource } from "../auth/authenticator.js";
import { claimedCredential } from "../auth/credential-claim.js";
import type { Principal } from "../auth/principal.js";
import type { AuditQueue } from "../audit/audit-queue.js";
import { header, methodName, traceIdOf, userAgentOf } from "./call-facts.js";
import { requestIdHeader } from "./request-id-interceptor.js";

/** The codes of a refused call: no credential, no permission, over a limit. */
const refusalCodes: ReadonlySet<Code> = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.ResourceExhausted]);

/** A refused call as the place that refused it knows it. */
export interface RefusedCall {
  readonly method: DescMethod;
  readonly protocol: string;
  readonly headers: HeaderSource;
  readonly clientAddress: string;
  /** The authenticated caller, when the refusal came after authentication. */
  readonly principal: Principal | undefined;
  /** The call's correlation id when known; else the error's or the request's `x-request-id`. */
  readonly requestId?: string | undefined;
}

/**
 * Records refusals in the audit log, by their code, wherever they are
 * decided: the audit interceptor for those the interceptor chain makes
 * (authentication, permissions, limits), and each transport for those it
 * makes before the chain runs (connect's universal handler refusing a
 * caller before reading its body, a body over its limit, a limit checked
 * from the headers alone). Each error is recorded once, by the first place
 * that sees it; other codes are not refusals and are ignored.
 */
export class RefusalAudit {
  readonly #queue: AuditQueue | undefined;
  readonly #recorded = new WeakSet<object>();

  /** Without a queue (the audit log is off) nothing is recorded. */
  constructor(queue: AuditQueue | undefined) {
    this.#queue = queue;
  }

  /** Queues an event for `error` if it is a refusal not yet recorded; cheap, never throws. */
  record(error: unknown, call: RefusedCall): void {
    if (this.#queue === undefined) return;
    const connectError = error instanceof ConnectError ? error : ConnectError.from(error);
    if (!refusalCodes.has(connectError.code)) return;
    const key = (typeof error === "object" && error !== null ? error : connectError) as object;
    if (this.#recorded.has(key)) return;
    this.#recorded.add(key);
    const principal = call.principal;
    const claim = principal === undefined ? claimedCredential(call.headers) : undefined;
    this.#queue.add({
      tenant: principal?.tenant,
      claim,
      event: {
        time: new Date(),
        kind: "refusal",
        credentialKind: principal?.credential.kind ?? claim?.kind ?? "",
        credentialId: principal?.credential.id ?? claim?.id ?? "",
        subject: principal?.subject ?? "",
        method: methodName(call.method),
        protocol: call.protocol,
        requestId: call.requestId || connectError.metadata.get(requestIdHeader) || (header(call.headers, requestIdHeader) ?? "").slice(0, 128),
        traceId: traceIdOf(call.headers),
        resourceIds: [],
        outcome: connectError.code,
        clientAddress: call.clientAddress,
        userAgent: userAgentOf(call.headers),
        parameters: null,
        droppedCount: 0,
      },
    });
  }
}
