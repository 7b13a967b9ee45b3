import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, PreconditionFailureSchema } from "../../gen/google/rpc/error_details_pb.js";

/** What a failed call tells a person: the server's message and the details it sent, not an invented text. */
export interface ErrorReport {
  readonly code: Code;
  readonly message: string;
  /** BadRequest field violations by field path (`workflow.name` → "must not be empty"). */
  readonly fields: ReadonlyMap<string, string>;
  /** PreconditionFailure violations, e.g. a status transition the finding does not allow. */
  readonly preconditions: readonly string[];
}

/** Reads a failed call's code, message and google.rpc details. */
export function errorReport(err: unknown): ErrorReport {
  const e = ConnectError.from(err);
  const fields = new Map<string, string>();
  for (const bad of e.findDetails(BadRequestSchema)) for (const v of bad.fieldViolations) fields.set(v.field, v.description);
  const preconditions = e.findDetails(PreconditionFailureSchema).flatMap((p) => p.violations.map((v) => v.description || v.subject));
  return { code: e.code, message: e.rawMessage, fields, preconditions };
}

/** Headline for each code a person can act on. */
function headline(code: Code): string {
  switch (code) {
    case Code.Unauthenticated:
      return "You are not signed in, or your credential is no longer valid";
    case Code.PermissionDenied:
      return "Your roles do not allow this";
    case Code.FailedPrecondition:
      return "Not allowed in its current state";
    case Code.Aborted:
      return "Someone else changed this meanwhile: reload it and try again";
    case Code.InvalidArgument:
      return "Some fields need attention";
    case Code.NotFound:
      return "Not found";
    case Code.Unavailable:
      return "The gateway is unavailable; try again shortly";
    default:
      return "Something went wrong";
  }
}

/** A failed call as an alert: headline, the server's message and its precondition violations. */
export function ErrorMessage({ error }: { error: unknown }) {
  const report = errorReport(error);
  return (
    <div role="alert" className="error">
      <strong>{headline(report.code)}</strong>
      <p>{report.message}</p>
      {report.preconditions.length > 0 && (
        <ul>
          {report.preconditions.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
    </div>
  );
}
