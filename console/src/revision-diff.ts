import type { Workflow, Workflow_Step } from "../../gen/anvil/workflows/v1/workflows_pb.js";
import { workflowStateLabel } from "./workflows.js";

/** How one line of a comparison differs between the older and the newer revision: said in words, not only colour. */
export type Change = "Unchanged" | "Changed" | "Added" | "Removed";

/** One line of two revisions side by side: a workflow field, or a step by its name. */
export interface DiffRow {
  readonly label: string;
  /** Undefined: absent from that revision (a step added or removed). */
  readonly older: string | undefined;
  readonly newer: string | undefined;
  readonly change: Change;
}

/** A step as one readable line: its kind, what it waits for, its config and its compensation. */
export function stepSummary(s: Workflow_Step): string {
  const parts = [`kind ${s.kind}`, `after ${s.dependsOn.join(", ") || "nothing"}`];
  if (s.config !== undefined && Object.keys(s.config).length > 0) parts.push(`config ${JSON.stringify(s.config)}`);
  if (s.compensation !== undefined) parts.push(`undone by ${s.compensation.kind}`);
  return parts.join("; ");
}

const row = (label: string, older: string | undefined, newer: string | undefined): DiffRow => ({
  label,
  older,
  newer,
  change: older === newer ? "Unchanged" : older === undefined ? "Added" : newer === undefined ? "Removed" : "Changed",
});

/**
 * Two revisions of a workflow side by side: its name, description and state,
 * then every step of either (matched by name, in the newer revision's order,
 * removed steps last).
 */
export function diffRevisions(older: Workflow, newer: Workflow): DiffRow[] {
  const olderSteps = new Map(older.steps.map((s) => [s.name, stepSummary(s)]));
  const newerSteps = new Map(newer.steps.map((s) => [s.name, stepSummary(s)]));
  const names = [...newerSteps.keys(), ...[...olderSteps.keys()].filter((n) => !newerSteps.has(n))];
  return [
    row("Name", older.displayName, newer.displayName),
    row("Description", older.description || "—", newer.description || "—"),
    row("State", workflowStateLabel(older.state), workflowStateLabel(newer.state)),
    ...names.map((n) => row(`Step ${n}`, olderSteps.get(n), newerSteps.get(n))),
  ];
}
