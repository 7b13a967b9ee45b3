import {
  AbortedError,
  AlreadyExistsError,
  DeadlineExceededError,
  DomainError,
  UnavailableError,
} from "../shared/errors.js";

/** SQLSTATE codes (https://www.postgresql.org/docs/current/errcodes-appendix.html). */
export const SqlState = {
  uniqueViolation: "23505",
  foreignKeyViolation: "23503",
  serializationFailure: "40001",
  deadlockDetected: "40P01",
  queryCanceled: "57014",
  lockNotAvailable: "55P03",
} as const;

/** The SQLSTATE of a driver error, if it has one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

// Messages node-postgres and its pool use when the connection itself failed.
const connectionFailures = [
  "Connection terminated",
  "connection timeout",
  "timeout exceeded when trying to connect",
  "Client has encountered a connection error",
  "Connection refused",
  "the database system is",
  // query_timeout: the server never answered (see fenced-pg-pool.ts).
  "Query read timeout",
];
const connectionErrnos = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH"]);

/**
 * Turns what the driver threw into a domain error where the cause is known:
 * a lost or refused connection is UNAVAILABLE (retryable), a cancelled
 * statement is DEADLINE_EXCEEDED, a lost race is ABORTED. Anything else is
 * returned unchanged and ends up INTERNAL — with the driver's text kept only
 * as the cause, for the log.
 */
export function translateDatabaseError(err: unknown): unknown {
  if (err instanceof DomainError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  // The socket's errno before any SQLSTATE: EPIPE has a SQLSTATE's shape too (five capitals).
  // Stryker disable next-line ConditionalExpression: a set of strings has no other value; the typeof narrows the type
  if (typeof code === "string" && connectionErrnos.has(code)) return new UnavailableError(undefined, { cause: err });
  const state = sqlState(err);
  if (state !== undefined) {
    if (state === SqlState.queryCanceled || state === SqlState.lockNotAvailable) {
      return new DeadlineExceededError("the request's deadline passed while the database was working", { cause: err });
    }
    if (state === SqlState.serializationFailure || state === SqlState.deadlockDetected) {
      return new AbortedError("the request conflicted with a concurrent one; retry it", "TRANSACTION_CONFLICT");
    }
    // A repository that expects a violation names the field itself; one nobody
    // expected says only that the resource exists. The constraint's name is
    // the schema's business: it stays in the cause, for the log.
    if (state === SqlState.uniqueViolation) return new AlreadyExistsError("resource", "key", { cause: err });
    // Class 08: connection exception; 57P0x: server shutting down or starting; 53300: too many connections;
    // class 28 and 3D000: the role or the database refused at connect (FencedPgPool covers the pool's connects,
    // this covers a driver error that reaches here some other way).
    if (state.startsWith("08") || state.startsWith("57P") || state === "53300" || state.startsWith("28") || state === "3D000") {
      return new UnavailableError(undefined, { cause: err });
    }
    return err;
  }
  // Stryker disable next-line StringLiteral: any text that names no connection failure reads the same
  const message = err instanceof Error ? err.message : "";
  if (connectionFailures.some((m) => message.includes(m))) return new UnavailableError(undefined, { cause: err });
  return err;
}
