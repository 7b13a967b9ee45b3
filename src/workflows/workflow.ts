import type { TaskCompensation } from "../operations/task.js";
import type { JsonObject } from "../shared/json.js";

/** A workflow at one revision, as the domain sees it. */
export interface Workflow extends NewWorkflow {
  readonly id: string;
  /** Starts at 1, bumped by every update; also what the etag is derived from. */
  readonly revision: number;
  readonly createTime: Date;
  /** When this revision was written. */
  readonly updateTime: Date;
}

/** One step; `dependsOn` names earlier steps only (see workflow-steps.ts). */
export interface WorkflowStep {
  readonly name: string;
  /** The kind of worker; `agent` steps need an agent binding to deploy. */
  readonly kind: string;
  readonly config: JsonObject;
  readonly dependsOn: readonly string[];
  /** How to undo the step when a later one fails for good or the run is cancelled; absent: nothing to undo. */
  readonly compensation?: TaskCompensation | undefined;
}

export type WorkflowState = "draft" | "active" | "archived";

/** The step kind an IPA must bind to an agent. */
export const agentStepKind = "agent";

/** What a client decides when creating a workflow. */
export interface NewWorkflow {
  readonly displayName: string;
  readonly description: string;
  readonly steps: readonly WorkflowStep[];
  readonly state: WorkflowState;
}

/** The fields an update may change; absent fields stay as they are. */
export type WorkflowPatch = Partial<NewWorkflow>;

/** The field-mask paths an update accepts, mapped to the domain field they change. */
export const updatableWorkflowFields = {
  display_name: "displayName",
  description: "description",
  steps: "steps",
  state: "state",
} as const satisfies Record<string, keyof NewWorkflow>;
