import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
  QuotaFailureSchema,
  RetryInfoSchema,
} from "../gen/google/rpc/error_details_pb.js";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { domainErrorCodes, errorDomain, toConnectError } from "../src/rpc/error-mapping.js";
import { errorStatus } from "../src/server/rest/rest-errors.js";
import * as errors from "../src/shared/errors.js";
import { DomainError } from "../src/shared/errors.js";

/**
 * The error table has no gaps: every DomainError subclass errors.ts exports
 * maps to its code with an ErrorInfo detail, every Connect code a framework
 * error can carry passes through (INTERNAL/UNKNOWN sanitized), and anything
 * else — a bug, a driver error — is INTERNAL without its text.
 */

type DomainErrorClass = new (...args: never[]) => DomainError;

// Every exported class below DomainError, found by walking the module, so a
// class added to errors.ts is tested without anyone listing it here.
const domainClasses = (Object.entries(errors) as [string, unknown][]).filter(
  (entry): entry is [string, DomainErrorClass] =>
    typeof entry[1] === "function" && entry[1] !== DomainError && entry[1].prototype instanceof DomainError,
);

// Constructors whose arguments are not `(message)`; any other class is built with one message.
const samples: Record<string, () => DomainError> = {
  NotFoundError: () => new errors.NotFoundError("user", "3f2c0000-0000-4000-8000-000000000000"),
  InvalidArgumentError: () =>
    new errors.InvalidArgumentError("invalid request", [
      { field: "user.email", description: "must be an e-mail address" },
      { field: "user.roles[0]", description: "must be a lowercase token" },
    ]),
  AlreadyExistsError: () => new errors.AlreadyExistsError("user", "email"),
  FailedPreconditionError: () =>
    new errors.FailedPreconditionError("agent disabled", [{ type: "AGENT_DISABLED", subject: "agents/1", description: "disabled" }]),
  AbortedError: () => new errors.AbortedError("etag mismatch"),
  PermissionDeniedError: () => new errors.PermissionDeniedError("permission users.write required", { permission: "users.write" }),
  RateLimitedError: () =>
    new errors.RateLimitedError({ policy: "free", burst: 20, ratePerMinute: 10, subject: "api_key:3f2c0000-0000-4000-8000-000000000000", retryAfterMs: 5_250 }),
};

function sample(name: string, type: DomainErrorClass): DomainError {
  const make = samples[name];
  return make ? make() : new (type as unknown as new (message: string) => DomainError)(`sample ${name}`);
}

const correlationId = "req-0123456789";

describe("domain errors → Connect codes", () => {
  it("finds the domain error classes by enumerating errors.ts", () => {
    // Guards the enumeration itself: if it found nothing, the walk below would prove nothing.
    expect(domainClasses.map(([n]) => n)).toEqual(
      expect.arrayContaining(["NotFoundError", "InvalidArgumentError", "InternalError", "UnauthenticatedError", "ResourceExhaustedError"]),
    );
    expect(domainClasses.length).toBeGreaterThanOrEqual(11);
  });

  it.each(domainClasses)("%s has its own entry in domainErrorCodes", (_name, type) => {
    // The class itself, or a DomainError subclass it extends, must be in the table.
    const entry = domainErrorCodes.find(([t]) => t === type || type.prototype instanceof t);
    expect(entry, `${type.name} has no entry in domainErrorCodes`).toBeDefined();
  });

  it.each(domainClasses)("%s maps to its code with an ErrorInfo detail", (name, type) => {
    const err = sample(name, type);
    const expected = domainErrorCodes.find(([t]) => err instanceof t)![1];
    const mapped = toConnectError(err, correlationId);
    expect(mapped).toBeInstanceOf(ConnectError);
    expect(Code[mapped.code]).toBe(Code[expected]);
    const [info] = mapped.findDetails(ErrorInfoSchema);
    expect(info, "ErrorInfo detail").toBeDefined();
    expect(info!.domain).toBe(errorDomain);
    if (expected === Code.Internal) {
      // Internal errors say nothing but the correlation id.
      expect(mapped.rawMessage).toBe(`internal error (correlation id ${correlationId})`);
      expect(info!.metadata.correlation_id).toBe(correlationId);
    } else {
      expect(mapped.rawMessage).toBe(err.message);
      expect(info!.reason).toBe(err.reason);
      expect(info!.metadata).toEqual({ ...err.metadata });
    }
  });

  it("lists every violated field of an InvalidArgumentError in google.rpc.BadRequest", () => {
    const mapped = toConnectError(samples.InvalidArgumentError!(), correlationId);
    const [badRequest] = mapped.findDetails(BadRequestSchema);
    expect(badRequest?.fieldViolations.map((v) => v.field)).toEqual(["user.email", "user.roles[0]"]);
  });

  it("carries FailedPreconditionError violations in google.rpc.PreconditionFailure", () => {
    const mapped = toConnectError(samples.FailedPreconditionError!(), correlationId);
    const [failure] = mapped.findDetails(PreconditionFailureSchema);
    expect(failure?.violations).toEqual([
      expect.objectContaining({ type: "AGENT_DISABLED", subject: "agents/1", description: "disabled" }),
    ]);
  });

  it("carries a RateLimitedError's retry delay in google.rpc.RetryInfo (to the millisecond) and its limit in google.rpc.QuotaFailure", () => {
    const mapped = toConnectError(samples.RateLimitedError!(), correlationId);
    expect(mapped.code).toBe(Code.ResourceExhausted);
    const [retry] = mapped.findDetails(RetryInfoSchema);
    expect(retry?.retryDelay?.seconds).toBe(5n);
    expect(retry?.retryDelay?.nanos).toBe(250_000_000);
    const [quota] = mapped.findDetails(QuotaFailureSchema);
    expect(quota?.violations).toEqual([
      expect.objectContaining({ subject: "api_key:3f2c0000-0000-4000-8000-000000000000", description: 'policy "free": 20 calls at once, then 10 per minute' }),
    ]);
    expect(mapped.findDetails(ErrorInfoSchema)[0]?.reason).toBe("RATE_LIMITED");
  });

  it("hides an InternalError's message", () => {
    const mapped = toConnectError(new errors.InternalError("invariant broken: row 42 of users has no tenant"), correlationId);
    expect(mapped.code).toBe(Code.Internal);
    expect(mapped.message).not.toContain("row 42");
  });
});

// Code is a numeric TS enum: its numeric values are the codes.
const allCodes = Object.values(Code).filter((v): v is Code => typeof v === "number");

describe("Connect codes pass through", () => {
  it("covers all sixteen codes", () => {
    expect(allCodes).toHaveLength(16);
  });

  it.each(allCodes.map((c) => [Code[c], c] as const))("%s", (_name, code) => {
    const original = new ConnectError("framework detail: parse state 7", code);
    const mapped = toConnectError(original, correlationId);
    if (code === Code.Internal || code === Code.Unknown) {
      expect(mapped.code).toBe(Code.Internal);
      expect(mapped.rawMessage).toBe(`internal error (correlation id ${correlationId})`);
      expect(mapped.findDetails(ErrorInfoSchema)[0]?.metadata.correlation_id).toBe(correlationId);
    } else {
      expect(Code[mapped.code]).toBe(Code[code]);
      expect(mapped.rawMessage).toBe(original.rawMessage);
    }
  });
});

describe("unexpected exceptions", () => {
  it("turn a pg-like driver error into INTERNAL without its text", () => {
    const pgError = Object.assign(new Error('relation "users" does not exist'), {
      code: "42P01",
      severity: "ERROR",
      routine: "parserOpenTable",
    });
    const mapped = toConnectError(pgError, correlationId);
    expect(mapped.code).toBe(Code.Internal);
    expect(mapped.rawMessage).toBe(`internal error (correlation id ${correlationId})`);
    const [info] = mapped.findDetails(ErrorInfoSchema);
    expect(info?.metadata).toEqual({ correlation_id: correlationId });
    // The original stays available to the log, never to the client.
    expect(mapped.cause).toBe(pgError);
  });

  it.each([
    ["a TypeError", new TypeError("Cannot read properties of undefined (reading 'id')")],
    ["a thrown string", "SELECT * FROM users WHERE tenant_id = $1"],
    ["undefined", undefined],
  ])("turn %s into INTERNAL without its text", (_name, thrown) => {
    const mapped = toConnectError(thrown, correlationId);
    expect(mapped.code).toBe(Code.Internal);
    expect(mapped.rawMessage).toBe(`internal error (correlation id ${correlationId})`);
  });
});

/**
 * The same facts written out by hand, from the gRPC status code guide and
 * the Connect protocol's HTTP mapping, not read from the code under test: a
 * change to the mapping must change this table too, on purpose.
 */
describe("the error table, written independently", () => {
  const codeOfClass: Record<string, Code> = {
    NotFoundError: Code.NotFound,
    InvalidArgumentError: Code.InvalidArgument,
    AlreadyExistsError: Code.AlreadyExists,
    FailedPreconditionError: Code.FailedPrecondition,
    AbortedError: Code.Aborted,
    PermissionDeniedError: Code.PermissionDenied,
    UnauthenticatedError: Code.Unauthenticated,
    ResourceExhaustedError: Code.ResourceExhausted,
    RateLimitedError: Code.ResourceExhausted,
    UnavailableError: Code.Unavailable,
    DeadlineExceededError: Code.DeadlineExceeded,
    OutOfRangeError: Code.OutOfRange,
    InternalError: Code.Internal,
  };
  // https://connectrpc.com/docs/protocol/#error-codes
  const httpStatusOfCode: Record<string, number> = {
    Canceled: 499,
    Unknown: 500,
    InvalidArgument: 400,
    DeadlineExceeded: 504,
    NotFound: 404,
    AlreadyExists: 409,
    PermissionDenied: 403,
    ResourceExhausted: 429,
    FailedPrecondition: 400,
    Aborted: 409,
    OutOfRange: 400,
    Unimplemented: 501,
    Internal: 500,
    Unavailable: 503,
    DataLoss: 500,
    Unauthenticated: 401,
  };

  it("has a row for every domain error class, and no row for a class that is gone", () => {
    expect(domainClasses.map(([n]) => n).sort()).toEqual(Object.keys(codeOfClass).sort());
  });

  it.each(domainClasses)("%s is answered with the code the table gives", (name, type) => {
    expect(Code[toConnectError(sample(name, type), correlationId).code]).toBe(Code[codeOfClass[name]!]);
  });

  it.each(Object.entries(httpStatusOfCode))("%s is HTTP %i over Connect and REST", (name, status) => {
    const code = Code[name as keyof typeof Code];
    expect(codeToHttpStatus(code)).toBe(status);
    const error = new ConnectError("x", code);
    // What the REST layer refuses itself: a body it cannot read (UNIMPLEMENTED there) is 415, as HTTP has it.
    expect(errorStatus(error)).toBe(code === Code.Unimplemented ? 415 : status);
  });
});
