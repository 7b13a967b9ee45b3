import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ListWorkflowRevisionsResponseSchema,
  RunWorkflowResponseSchema,
  type Workflow as WorkflowMessage,
  type Workflow_Step as StepMessage,
  WorkflowSchema,
  WorkflowService,
  Workflow_State,
} from "../../gen/anvil/workflows/v1/workflows_pb.js";
import { toOperationMessage } from "../operations/operation-messages.js";
import { enumMapping } from "../rpc/enum-mapping.js";
import { patchFromMask } from "../rpc/field-mask.js";
import { requestContext } from "../rpc/request-context.js";
import { type ResourceMessages, resourceMethods } from "../rpc/resource-methods.js";
import { etagOf } from "../shared/etag.js";
import { type NewWorkflow, updatableWorkflowFields, type Workflow, type WorkflowPatch, type WorkflowStep } from "./workflow.js";
import type { WorkflowsService } from "./workflows.service.js";

const states = enumMapping([
  [Workflow_State.DRAFT, "draft"],
  [Workflow_State.ACTIVE, "active"],
  [Workflow_State.ARCHIVED, "archived"],
] as const);

/** WorkflowService over the wire: converts proto ⇄ domain and nothing else. */
export function workflowsHandler(workflows: WorkflowsService): ServiceImpl<typeof WorkflowService> {
  return {
    ...resourceMethods(WorkflowService, workflows, workflowMessages),
    async listWorkflowRevisions(req, ctx) {
      const page = await workflows.revisions(requestContext(ctx), req.id, { pageSize: req.pageSize, pageToken: req.pageToken });
      return create(ListWorkflowRevisionsResponseSchema, { revisions: page.items.map(toMessage), nextPageToken: page.nextPageToken });
    },
    async runWorkflow(req, ctx) {
      const operation = await workflows.run(requestContext(ctx), req.id, req.requestId || undefined);
      return create(RunWorkflowResponseSchema, { operation: toOperationMessage(operation) });
    },
  };
}

const workflowMessages: ResourceMessages<Workflow, NewWorkflow, WorkflowPatch, WorkflowMessage> = {
  schema: WorkflowSchema,
  toMessage,
  toNew: newWorkflow,
  toPatch: (sent, mask) => {
    const patch = patchFromMask(mask, updatableWorkflowFields, {
      displayName: sent.displayName,
      description: sent.description,
      steps: sent.steps.map(toStep),
      state: states.toDomain(sent.state),
    });
    if ("state" in patch) patch.state = states.required(sent.state, "workflow.state");
    return patch;
  },
};

function newWorkflow(m: WorkflowMessage): NewWorkflow {
  return {
    displayName: m.displayName,
    description: m.description,
    steps: m.steps.map(toStep),
    state: states.toDomain(m.state) ?? "draft",
  };
}

function toStep(m: StepMessage): WorkflowStep {
  const c = m.compensation;
  const compensation = c && { kind: c.kind, config: c.config ?? {}, maxAttempts: c.retryPolicy?.maxAttempts ?? 0 };
  return { name: m.name, kind: m.kind, config: m.config ?? {}, dependsOn: m.dependsOn, ...(compensation && { compensation }) };
}

function toStepMessage(s: WorkflowStep) {
  const c = s.compensation;
  const compensation = c && { kind: c.kind, config: c.config, ...(c.maxAttempts > 0 && { retryPolicy: { maxAttempts: c.maxAttempts } }) };
  return { name: s.name, kind: s.kind, config: s.config, dependsOn: [...s.dependsOn], compensation };
}

function toMessage(workflow: Workflow): WorkflowMessage {
  return create(WorkflowSchema, {
    id: workflow.id,
    displayName: workflow.displayName,
    description: workflow.description,
    steps: workflow.steps.map(toStepMessage),
    state: states.toMessage(workflow.state),
    revision: workflow.revision,
    etag: etagOf(workflow.revision),
    createTime: timestampFromDate(workflow.createTime),
    updateTime: timestampFromDate(workflow.updateTime),
  });
}
