import { create, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import type { ContextValues, Interceptor } from "@connectrpc/connect";
import type { ChangeAudit, NewAuditEvent } from "../audit/audit-event.js";
import type { HeaderSource } from "../auth/authenticator.js";
import { methodName, protocolOf, traceIdOf, userAgentOf } from "./call-facts.js";
import { redactedJson, requestResourceIds } from "./audit-redaction.js";
import type { RefusalAudit } from "./refusal-audit.js";
import { changeAuditKey, clientAddressKey, principalKey, protocolKey, requestIdKey } from "./request-context.js";

/**
 * The methods that change things, read from the protos: every method of
 * `services` not declared `idempotency_level = NO_SIDE_EFFECTS`.
 */
export function mutatingMethods(services: readonly DescService[]): ReadonlySet<DescMethod> {
  return new Set(services.flatMap((s) => s.methods).filter((m) => m.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS));
}

/**
 * The audit log's place in the interceptor chain, outside error mapping
 * (it sees every call's final code) and outside authentication (it sees its
 * refusals):
 *   - a call of a mutating method carries a ChangeAudit in its context; the
 *     handler's scope hands it to the unit of work, which writes the event
 *     in each transaction that changes something — services write no audit
 *     code of their own;
 *   - a refused call (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED)
 *     is queued for the audit log off the request path (RefusalAudit).
 */
export function auditInterceptor(mutating: ReadonlySet<DescMethod>, refusals: RefusalAudit): Interceptor {
  return (next) => async (req) => {
    if (mutating.has(req.method) && !req.stream) {
      const message = req.message;
      req.contextValues.set(changeAuditKey, new CallChangeAudit(req.method, () => message, req.header, req.contextValues));
    } else if (req.stream && mutating.has(req.method) && req.method.methodKind === "client_streaming") {
      // A client stream (an artifact upload) is audited with its first
      // message, the header that says what is changed; the handler has read
      // it before any of its transactions writes.
      const first: { message?: Parameters<typeof redactedJson>[1] } = {};
      const stream = req;
      req = { ...stream, message: rememberFirst(stream.message, first) };
      req.contextValues.set(changeAuditKey, new CallChangeAudit(req.method, () => first.message ?? create(req.method.input), req.header, req.contextValues));
    }
    // A mutating server stream (StreamTasks leases tasks) is audited like a
    // unary call: its one request is read before the handler runs, and its
    // audit is set as it is read.
    if (mutating.has(req.method) && req.stream && req.method.methodKind === "server_streaming") {
      req = { ...req, message: auditedAsRead(req.method, req.message, req.header, req.contextValues) };
    }
    try {
      return await next(req);
    } catch (err) {
      refusals.record(err, {
        method: req.method,
        protocol: req.contextValues.get(protocolKey) ?? protocolOf(req.header),
        headers: req.header,
        clientAddress: req.contextValues.get(clientAddressKey),
        principal: req.contextValues.get(principalKey),
        requestId: req.contextValues.get(requestIdKey),
      });
      throw err;
    }
  };
}

/** The request messages of a stream, each setting the call's ChangeAudit as it is read. */
async function* auditedAsRead<I>(method: DescMethod, messages: AsyncIterable<I>, headers: HeaderSource, values: ContextValues): AsyncIterable<I> {
  for await (const message of messages) {
    values.set(changeAuditKey, new CallChangeAudit(method, () => message as Parameters<typeof redactedJson>[1], headers, values));
    yield message;
  }
}

/**
 * The audit of a call the chain reads as a read but whose caller changes
 * something around it — a webhook delivery's alert correlation, recorded as
 * the delivery's answer: made for `method` with `message`, as the call's
 * context (caller, protocol, request id) says once it has run.
 */
export function changeAuditOf(method: DescMethod, message: Parameters<typeof redactedJson>[1], headers: HeaderSource, values: ContextValues): ChangeAudit {
  return new CallChangeAudit(method, () => message, headers, values);
}

/**
 * The audit of one mutating call. Built before authentication has run, so
 * it reads the caller from the call's context when the event is made (by
 * then the handler runs, so the caller is known); the redacted parameters
 * are made once, however many transactions the call writes in.
 */
class CallChangeAudit implements ChangeAudit {
  readonly #method: DescMethod;
  readonly #message: () => Parameters<typeof redactedJson>[1];
  readonly #headers: HeaderSource;
  readonly #values: ContextValues;
  #base: Omit<NewAuditEvent, "time" | "resourceIds"> | undefined;
  #requestIds: string[] = [];

  constructor(method: DescMethod, message: () => Parameters<typeof redactedJson>[1], headers: HeaderSource, values: ContextValues) {
    this.#method = method;
    this.#message = message;
    this.#headers = headers;
    this.#values = values;
  }

  eventFor(touchedIds: Iterable<string>, time: Date): NewAuditEvent {
    const base = (this.#base ??= this.#make());
    return { ...base, time, resourceIds: [...new Set([...this.#requestIds, ...touchedIds])] };
  }

  #make(): Omit<NewAuditEvent, "time" | "resourceIds"> {
    const principal = this.#values.get(principalKey);
    this.#requestIds = requestResourceIds(this.#method.input, this.#message());
    return {
      tenant: principal?.tenant ?? "",
      kind: "mutation",
      credentialKind: principal?.credential.kind ?? "",
      credentialId: principal?.credential.id ?? "",
      subject: principal?.subject ?? "",
      method: methodName(this.#method),
      protocol: this.#values.get(protocolKey) ?? protocolOf(this.#headers),
      requestId: this.#values.get(requestIdKey),
      traceId: traceIdOf(this.#headers),
      outcome: 0,
      clientAddress: this.#values.get(clientAddressKey),
      userAgent: userAgentOf(this.#headers),
      parameters: redactedJson(this.#method.input, this.#message()),
      droppedCount: 0,
    };
  }
}

/** The stream's messages, unchanged, with the first one kept in `first`. */
async function* rememberFirst<T>(messages: AsyncIterable<T>, first: { message?: unknown }): AsyncGenerator<T> {
  let seen = false;
  for await (const m of messages) {
    if (!seen) {
      first.message = m;
      seen = true;
    }
    yield m;
  }
}
