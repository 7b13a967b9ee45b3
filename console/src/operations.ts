import { CompensationRecord_Outcome, Operation_State } from "../../gen/anvil/operations/v1/operations_pb.js";

/** Operation states in the words a person reads. */
export const operationStates: ReadonlyArray<{ value: Operation_State; label: string }> = [
  { value: Operation_State.QUEUED, label: "Queued" },
  { value: Operation_State.RUNNING, label: "Running" },
  { value: Operation_State.SUCCEEDED, label: "Succeeded" },
  { value: Operation_State.FAILED, label: "Failed" },
  { value: Operation_State.CANCELLED, label: "Cancelled" },
  { value: Operation_State.COMPENSATING, label: "Compensating" },
  { value: Operation_State.COMPENSATION_FAILED, label: "Compensation failed" },
];

export function operationStateLabel(s: Operation_State): string {
  return operationStates.find((x) => x.value === s)?.label ?? "Unknown";
}

/** Whether the state is final: nothing more will happen to the operation. */
export function isFinal(s: Operation_State): boolean {
  return s === Operation_State.SUCCEEDED || s === Operation_State.FAILED || s === Operation_State.CANCELLED || s === Operation_State.COMPENSATION_FAILED;
}

/** How a compensation of a saga stands, in words. */
export function compensationOutcomeLabel(o: CompensationRecord_Outcome): string {
  switch (o) {
    case CompensationRecord_Outcome.PENDING:
      return "Pending";
    case CompensationRecord_Outcome.SUCCEEDED:
      return "Undone";
    case CompensationRecord_Outcome.FAILED:
      return "Failed: needs attention";
    case CompensationRecord_Outcome.SKIPPED:
      return "Not run";
    default:
      return "Unknown";
  }
}

/** A 0–1 share as a whole percentage. */
export function percent(share: number): string {
  return `${Math.round(share * 100)}%`;
}
