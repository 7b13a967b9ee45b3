import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequest_FieldViolationSchema,
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailure_ViolationSchema,
  PreconditionFailureSchema,
  QuotaFailure_ViolationSchema,
  QuotaFailureSchema,
  RetryInfoSchema,
} from "../../gen/google/rpc/error_details_pb.js";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { type Status, StatusSchema } from "../../gen/google/rpc/status_pb.js";
import {
  AbortedError,
  AlreadyExistsError,
  DeadlineExceededError,
  DomainError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  PermissionDeniedError,
  RateLimitedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from "../shared/errors.js";

/** Domain of every google.rpc.ErrorInfo Anvil sends. */
export const errorDomain = "anvil.dev";

/**
 * How much of an error reaches the client. gRPC carries the message and the
 * details in trailers (`grpc-message`, percent-encoded, and
 * `grpc-status-details-bin`, base64), and a peer resets a stream whose
 * headers pass its limit (grpc-core: 8 KiB by default), so the client sees
 * INTERNAL instead of the error. A request with 100 bad map keys of 2,000
 * characters each made 400 KB of trailers. Within these the trailers stay
 * under ~8 KiB whatever the request held.
 */
export const errorBudget = {
  /** UTF-8 bytes of the message (up to three times that once percent-encoded). */
  messageBytes: 1_024,
  /** Violations named per error. */
  violations: 100,
  /** UTF-8 bytes of all violations' text together (then base64: ×4/3). */
  violationBytes: 3_000,
  /** UTF-8 bytes of one field path or description. */
  textBytes: 200,
} as const;

/**
 * The one table from domain errors to wire codes. A test walks every
 * DomainError subclass through it, so a new error class without a code fails
 * the build rather than surfacing as INTERNAL.
 */
export const domainErrorCodes: ReadonlyArray<readonly [abstract new (...args: never[]) => DomainError, Code]> = [
  [NotFoundError, Code.NotFound],
  [InvalidArgumentError, Code.InvalidArgument],
  [AlreadyExistsError, Code.AlreadyExists],
  [FailedPreconditionError, Code.FailedPrecondition],
  [AbortedError, Code.Aborted],
  [PermissionDeniedError, Code.PermissionDenied],
  [UnauthenticatedError, Code.Unauthenticated],
  [ResourceExhaustedError, Code.ResourceExhausted],
  [OutOfRangeError, Code.OutOfRange],
  [UnavailableError, Code.Unavailable],
  [DeadlineExceededError, Code.DeadlineExceeded],
  [InternalError, Code.Internal],
];

/**
 * Maps anything a handler threw to the ConnectError sent to the client.
 * Domain errors keep their message and get an ErrorInfo plus, where they
 * carry them, BadRequest or PreconditionFailure details. ConnectErrors raised
 * by the framework pass through. Anything else — a bug, a driver error — is
 * INTERNAL with only the correlation id: no stack, SQL or driver text leaves
 * the process (the original stays in `cause` for the log).
 */
export function toConnectError(err: unknown, correlationId: string): ConnectError {
  if (err instanceof DomainError) {
    const code = domainErrorCodes.find(([type]) => err instanceof type)?.[1] ?? Code.Internal;
    if (code === Code.Internal) return internal(correlationId, err);
    return new ConnectError(truncate(err.message, errorBudget.messageBytes), code, undefined, details(err), err);
  }
  if (err instanceof ConnectError) {
    if (isRequestParseError(err)) return new ConnectError("request message does not parse", Code.InvalidArgument, undefined, undefined, err);
    if (err.code === Code.Internal || err.code === Code.Unknown) return internal(correlationId, err);
    return err;
  }
  return internal(correlationId, err);
}

/**
 * A domain error as the google.rpc.Status that reports one refused item of
 * a batch (BatchCompleteTasks): the code and message the item's own call
 * would have failed with. Without details: an Any in a reply needs its type
 * in every JSON writer's registry (the batch names the reason beside it).
 */
export function toStatus(err: DomainError, correlationId: string): Status {
  const mapped = toConnectError(err, correlationId);
  return create(StatusSchema, { code: mapped.code, message: mapped.rawMessage });
}

/**
 * connect reports request bytes that do not parse as INTERNAL ("parse
 * binary: …"), as if the server were at fault. For unary calls
 * src/server/binary-parse-errors.ts corrects that on the wire; a server
 * stream reads its request inside the interceptors, so the error reaches
 * this mapping first, and it is the client's: INVALID_ARGUMENT.
 */
function isRequestParseError(err: ConnectError): boolean {
  return err.code === Code.Internal && err.rawMessage.startsWith("parse binary: ");
}

function internal(correlationId: string, cause: unknown): ConnectError {
  return new ConnectError(
    `internal error (correlation id ${correlationId})`,
    Code.Internal,
    undefined,
    [{ desc: ErrorInfoSchema, value: { reason: "INTERNAL", domain: errorDomain, metadata: { correlation_id: correlationId } } }],
    cause,
  );
}

function details(err: DomainError) {
  const info = create(ErrorInfoSchema, { reason: err.reason, domain: errorDomain, metadata: { ...err.metadata } });
  const out: ConstructorParameters<typeof ConnectError>[3] = [{ desc: ErrorInfoSchema, value: info }];
  if (err instanceof InvalidArgumentError && err.violations.length > 0) {
    out.push({
      desc: BadRequestSchema,
      value: create(BadRequestSchema, {
        fieldViolations: withinBudget(err.violations, (v) => ({ field: truncate(v.field, errorBudget.textBytes), description: truncate(v.description, errorBudget.textBytes) })).map((v) =>
          create(BadRequest_FieldViolationSchema, v),
        ),
      }),
    });
  }
  if (err instanceof FailedPreconditionError && err.violations.length > 0) {
    out.push({
      desc: PreconditionFailureSchema,
      value: create(PreconditionFailureSchema, {
        violations: withinBudget(err.violations, (v) => ({
          type: truncate(v.type, errorBudget.textBytes),
          subject: truncate(v.subject, errorBudget.textBytes),
          description: truncate(v.description, errorBudget.textBytes),
        })).map((v) => create(PreconditionFailure_ViolationSchema, v)),
      }),
    });
  }
  if (err instanceof RateLimitedError) {
    const { limit } = err;
    // To the millisecond: Retry-After can only say whole seconds.
    const retryDelay = create(DurationSchema, { seconds: BigInt(Math.floor(limit.retryAfterMs / 1000)), nanos: (limit.retryAfterMs % 1000) * 1_000_000 });
    out.push({ desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay }) });
    out.push({
      desc: QuotaFailureSchema,
      value: create(QuotaFailureSchema, {
        violations: [
          create(QuotaFailure_ViolationSchema, {
            subject: truncate(limit.subject, errorBudget.textBytes),
            description: `policy "${limit.policy}": ${limit.burst} calls at once, then ${limit.ratePerMinute} per minute`,
          }),
        ],
      }),
    });
  }
  return out;
}

/** The first violations, shortened, that fit the error budget (see errorBudget). */
function withinBudget<V, T extends Record<string, string>>(violations: readonly V[], shorten: (v: V) => T): T[] {
  const out: T[] = [];
  let bytes = 0;
  for (const v of violations) {
    if (out.length === errorBudget.violations) break;
    const short = shorten(v);
    bytes += Object.values(short).reduce((n, text) => n + Buffer.byteLength(text), 0);
    if (bytes > errorBudget.violationBytes && out.length > 0) break;
    out.push(short);
  }
  return out;
}

/** `text` cut to at most `maxBytes` of UTF-8, marked with "…" when cut (never inside a character). */
export function truncate(text: string, maxBytes: number): string {
  // Each UTF-16 unit is at most 3 bytes of UTF-8: short strings need no counting.
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text) <= maxBytes) return text;
  const bytes = Buffer.from(text).subarray(0, maxBytes - 3); // room for "…"
  // A cut inside a character leaves U+FFFD at the end; drop it.
  return `${new TextDecoder().decode(bytes).replace(/\uFFFD$/, "")}…`;
}
