import { type InputHTMLAttributes, useId } from "react";
import type { ErrorReport } from "../errors.js";

/** The violation of `path`, or of one of its items (`agent.tools[0]`) for a list edited as one input. */
function violationAt(report: ErrorReport, path: string): string | undefined {
  const own = report.fields.get(path);
  if (own !== undefined) return own;
  for (const [field, description] of report.fields) if (field.startsWith(`${path}[`)) return `${field.slice(path.length)}: ${description}`;
  return undefined;
}

/**
 * A labelled input with the server's violation for its field path shown
 * under it (from google.rpc.BadRequest), tied to it by aria-describedby and
 * aria-invalid so that a screen reader reads the reason with the field.
 */
export function Field({
  label,
  path,
  report,
  ...input
}: { label: string; path: string; report: ErrorReport | undefined } & InputHTMLAttributes<HTMLInputElement>) {
  const id = useId();
  const problem = report && violationAt(report, path);
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input id={id} aria-invalid={problem !== undefined} aria-describedby={problem !== undefined ? `${id}-error` : undefined} {...input} />
      {problem !== undefined && (
        <p id={`${id}-error`} className="field-error">
          {problem}
        </p>
      )}
    </div>
  );
}
