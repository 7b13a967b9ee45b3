/**
 * Anvil's domain errors. Services and repositories throw these; one
 * interceptor (src/rpc/error-interceptor.ts) maps them to wire codes, so no
 * transport type ever appears below the handlers.
 */

/** One field that failed a rule, named by its path in the request. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/** One unmet precondition, e.g. a missing agent binding. */
export interface PreconditionViolation {
  /** Kind of problem, e.g. `AGENT_DISABLED`. */
  readonly type: string;
  /** What it is about, e.g. `agents/3f2c…`. */
  readonly subject: string;
  readonly description: string;
}

/** Base class: `reason` is a stable machine-readable token for clients. */
export abstract class DomainError extends Error {
  abstract readonly reason: string;
  /** Extra facts for `google.rpc.ErrorInfo.metadata`; never secrets. */
  readonly metadata: Readonly<Record<string, string>>;

  constructor(message: string, metadata: Record<string, string> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.metadata = metadata;
  }
}

/** The resource does not exist for the caller (or belongs to another tenant). */
export class NotFoundError extends DomainError {
  readonly reason = "NOT_FOUND";
  constructor(readonly resource: string, readonly id: string) {
    super(`${resource} ${id} not found`, { resource, id });
  }
}

/** The request is malformed; every offending field is listed. */
export class InvalidArgumentError extends DomainError {
  readonly reason = "INVALID_ARGUMENT";
  constructor(message: string, readonly violations: readonly FieldViolation[] = []) {
    super(message);
  }

  /** Shorthand for a single bad field. */
  static field(field: string, description: string): InvalidArgumentError {
    return new InvalidArgumentError(`invalid ${field}: ${description}`, [{ field, description }]);
  }
}

/** A resource with the same identity already exists. */
export class AlreadyExistsError extends DomainError {
  readonly reason = "ALREADY_EXISTS";
  constructor(readonly resource: string, readonly field: string, options?: ErrorOptions) {
    super(`${resource} with this ${field} already exists`, { resource, field }, options);
  }
}

/** The system is not in a state that allows the operation. */
export class FailedPreconditionError extends DomainError {
  readonly reason = "FAILED_PRECONDITION";
  constructor(message: string, readonly violations: readonly PreconditionViolation[] = []) {
    super(message);
  }
}

/** A concurrency conflict: the etag did not match, or a transaction lost a race. Retry after re-reading. */
export class AbortedError extends DomainError {
  readonly reason: string;
  constructor(message: string, reason = "ETAG_MISMATCH") {
    super(message);
    this.reason = reason;
  }
}

/** The caller is known but may not do this. */
export class PermissionDeniedError extends DomainError {
  readonly reason = "PERMISSION_DENIED";
  constructor(message: string, metadata: Record<string, string> = {}) {
    super(message, metadata);
  }
}

/** What every refused credential is told, whatever the kind and the reason. */
export const unauthenticatedMessage = "missing or invalid credentials";

/**
 * The caller could not be identified. The message is always the same generic
 * one, so a prober learns nothing about which check failed; `why` is kept as
 * the cause for the log. The reason is `EXPIRED` for an expired token or key
 * (so a client knows to refresh) and `UNAUTHENTICATED` otherwise.
 */
export class UnauthenticatedError extends DomainError {
  readonly reason: "UNAUTHENTICATED" | "EXPIRED";
  constructor(why = "invalid credentials", options?: ErrorOptions & { readonly expired?: boolean }) {
    super(unauthenticatedMessage, {}, { cause: options?.cause ?? new Error(why) });
    this.reason = options?.expired === true ? "EXPIRED" : "UNAUTHENTICATED";
  }
}

/** A quota or size limit was hit. */
export class ResourceExhaustedError extends DomainError {
  readonly reason: string = "RESOURCE_EXHAUSTED";
}

/** A position past the end was asked for (a byte range beyond a file). */
export class OutOfRangeError extends DomainError {
  readonly reason = "OUT_OF_RANGE";
}

/** The limit that refused a call, as plain facts for the error's details. */
export interface RefusingLimit {
  /** The policy's name: the tier, or `ip` for callers without a valid credential. */
  readonly policy: string;
  readonly burst: number;
  readonly ratePerMinute: number;
  /** Whose bucket ran dry: `api_key:<id>`, `service_account:<id>`, `oidc:<id>` or `ip:<address>`. */
  readonly subject: string;
  readonly retryAfterMs: number;
}

/** A rate limit refused the call: RESOURCE_EXHAUSTED with RetryInfo and QuotaFailure (src/rpc/error-mapping.ts). */
export class RateLimitedError extends ResourceExhaustedError {
  override readonly reason = "RATE_LIMITED";
  constructor(readonly limit: RefusingLimit) {
    super(
      `rate limit "${limit.policy}" exceeded (${limit.burst} calls at once, then ${limit.ratePerMinute} per minute); retry in ${Math.ceil(limit.retryAfterMs / 1000)} s`,
      { policy: limit.policy },
    );
  }
}

/** A dependency (the database) is unreachable; the call is safe to retry. */
export class UnavailableError extends DomainError {
  readonly reason = "UNAVAILABLE";
  constructor(message = "service temporarily unavailable, retry later", options?: ErrorOptions) {
    super(message, {}, options);
  }
}

/** The request's deadline passed before the work finished. */
export class DeadlineExceededError extends DomainError {
  readonly reason = "DEADLINE_EXCEEDED";
  constructor(message = "deadline exceeded", options?: ErrorOptions) {
    super(message, {}, options);
  }
}

/** A bug or broken invariant. The message is never shown to clients. */
export class InternalError extends DomainError {
  readonly reason = "INTERNAL";
  constructor(message: string, options?: ErrorOptions) {
    super(message, {}, options);
  }
}
