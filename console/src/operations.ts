import { Operation_State } from "../../gen/anvil/operations/v1/operations_pb.js";

/** Operation states in the words a person reads. */
export const operationStates: ReadonlyArray<{ value: Operation_State; label: string }> = [
  { value: Operation_State.QUEUED, label: "Queued" },
  { value: Operation_State.RUNNING, label: "Running" },
  { value: Operation_State.SUCCEEDED, label: "Succeeded" },
  { value: Operation_State.FAILED, label: "Failed" },
  { value: Operation_State.CANCELLED, label: "Cancelled" },
];

export function operationStateLabel(s: Operation_State): string {
  return operationStates.find((x) => x.value === s)?.label ?? "Unknown";
}

/** Whether the state is final: nothing more will happen to the operation. */
export function isFinal(s: Operation_State): boolean {
  return s === Operation_State.SUCCEEDED || s === Operation_State.FAILED || s === Operation_State.CANCELLED;
}

/** A 0–1 share as a whole percentage. */
export function percent(share: number): string {
  return `${Math.round(share * 100)}%`;
}
