import type { OperationSpec } from "../operations/start-operation.js";
import { FailedPreconditionError } from "../shared/errors.js";
import type { JsonObject } from "../shared/json.js";
import type { Workflow, WorkflowStep } from "./workflow.js";

/** The operation kind of a workflow run. */
export const workflowRunKind = "workflow.run";

/**
 * The operation that runs a workflow: one task per step, of the step's
 * kind, its input the step's config (plus what `extra` adds, e.g. an IPA's
 * bound agent), blocked until the steps it depends on have succeeded.
 * Refused unless the workflow is active.
 */
export function workflowRunSpec(
  workflow: Workflow,
  kind = workflowRunKind,
  resource = `workflows/${workflow.id}`,
  extra: (step: WorkflowStep) => JsonObject = () => ({}),
): OperationSpec {
  if (workflow.state !== "active") {
    throw new FailedPreconditionError(`workflow ${workflow.id} is ${workflow.state}; only an active workflow can run`, [
      { type: "WORKFLOW_NOT_ACTIVE", subject: `workflows/${workflow.id}`, description: `the workflow is ${workflow.state}` },
    ]);
  }
  return {
    kind,
    resource,
    tasks: workflow.steps.map((step) => ({
      step: step.name,
      kind: step.kind,
      input: { ...step.config, ...extra(step) },
      dependsOn: step.dependsOn,
      compensation: step.compensation,
    })),
  };
}
