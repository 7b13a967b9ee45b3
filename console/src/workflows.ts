import { Workflow_State } from "../../gen/anvil/workflows/v1/workflows_pb.js";

export const workflowStates: ReadonlyArray<{ value: Workflow_State; label: string }> = [
  { value: Workflow_State.DRAFT, label: "Draft" },
  { value: Workflow_State.ACTIVE, label: "Active" },
  { value: Workflow_State.ARCHIVED, label: "Archived" },
];

export function workflowStateLabel(s: Workflow_State): string {
  return workflowStates.find((x) => x.value === s)?.label ?? "Unspecified";
}
