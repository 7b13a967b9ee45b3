import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type CreateWorkflowRequest,
  type CreateWorkflowResponse,
  CreateWorkflowResponseSchema,
  type DeleteWorkflowRequest,
  type DeleteWorkflowResponse,
  DeleteWorkflowResponseSchema,
  type GetWorkflowRequest,
  type GetWorkflowResponse,
  GetWorkflowResponseSchema,
  type ListWorkflowRevisionsRequest,
  type ListWorkflowRevisionsResponse,
  ListWorkflowRevisionsResponseSchema,
  type ListWorkflowsRequest,
  type ListWorkflowsResponse,
  ListWorkflowsResponseSchema,
  type RunWorkflowRequest,
  type RunWorkflowResponse,
  RunWorkflowResponseSchema,
  type UpdateWorkflowRequest,
  type UpdateWorkflowResponse,
  UpdateWorkflowResponseSchema,
  type Workflow as WorkflowMessage,
  type Workflow_Step as StepMessage,
  WorkflowSchema,
  type WorkflowService,
  Workflow_State,
} from "../../gen/anvil/workflows/v1/workflows_pb.js";
import { toOperationMessage } from "../operations/operation-messages.js";
import { enumMapping } from "../rpc/enum-mapping.js";
import { patchFromMask } from "../rpc/field-mask.js";
import { requestContext } from "../rpc/request-context.js";
import { etagOf } from "../shared/etag.js";
import { type NewWorkflow, updatableWorkflowFields, type Workflow, type WorkflowStep } from "./workflow.js";
import type { WorkflowsService } from "./workflows.service.js";

const states = enumMapping([
  [Workflow_State.DRAFT, "draft"],
  [Workflow_State.ACTIVE, "active"],
  [Workflow_State.ARCHIVED, "archived"],
] as const);

/** WorkflowService over the wire: converts proto ⇄ domain and nothing else. */
export class WorkflowsHandler implements ServiceImpl<typeof WorkflowService> {
  readonly #workflows: WorkflowsService;

  constructor(workflows: WorkflowsService) {
    this.#workflows = workflows;
  }

  async getWorkflow(req: GetWorkflowRequest, ctx: HandlerContext): Promise<GetWorkflowResponse> {
    const workflow = await this.#workflows.get(requestContext(ctx), req.id);
    return create(GetWorkflowResponseSchema, { workflow: toMessage(workflow) });
  }

  async listWorkflows(req: ListWorkflowsRequest, ctx: HandlerContext): Promise<ListWorkflowsResponse> {
    const page = await this.#workflows.list(requestContext(ctx), { pageSize: req.pageSize, pageToken: req.pageToken });
    return create(ListWorkflowsResponseSchema, { workflows: page.items.map(toMessage), nextPageToken: page.nextPageToken });
  }

  async createWorkflow(req: CreateWorkflowRequest, ctx: HandlerContext): Promise<CreateWorkflowResponse> {
    const workflow = await this.#workflows.create(requestContext(ctx), newWorkflow(req.workflow!), req.requestId || undefined);
    return create(CreateWorkflowResponseSchema, { workflow: toMessage(workflow) });
  }

  async updateWorkflow(req: UpdateWorkflowRequest, ctx: HandlerContext): Promise<UpdateWorkflowResponse> {
    const sent = req.workflow!;
    const patch = patchFromMask(req.updateMask, updatableWorkflowFields, {
      displayName: sent.displayName,
      description: sent.description,
      steps: sent.steps.map(toStep),
      state: states.toDomain(sent.state),
    });
    if ("state" in patch) patch.state = states.required(sent.state, "workflow.state");
    const workflow = await this.#workflows.update(requestContext(ctx), sent.id, patch, sent.etag || undefined);
    return create(UpdateWorkflowResponseSchema, { workflow: toMessage(workflow) });
  }

  async deleteWorkflow(req: DeleteWorkflowRequest, ctx: HandlerContext): Promise<DeleteWorkflowResponse> {
    await this.#workflows.delete(requestContext(ctx), req.id, req.etag || undefined);
    return create(DeleteWorkflowResponseSchema);
  }

  async listWorkflowRevisions(req: ListWorkflowRevisionsRequest, ctx: HandlerContext): Promise<ListWorkflowRevisionsResponse> {
    const page = await this.#workflows.revisions(requestContext(ctx), req.id, { pageSize: req.pageSize, pageToken: req.pageToken });
    return create(ListWorkflowRevisionsResponseSchema, { revisions: page.items.map(toMessage), nextPageToken: page.nextPageToken });
  }

  async runWorkflow(req: RunWorkflowRequest, ctx: HandlerContext): Promise<RunWorkflowResponse> {
    const operation = await this.#workflows.run(requestContext(ctx), req.id, req.requestId || undefined);
    return create(RunWorkflowResponseSchema, { operation: toOperationMessage(operation) });
  }
}

function newWorkflow(m: WorkflowMessage): NewWorkflow {
  return {
    displayName: m.displayName,
    description: m.description,
    steps: m.steps.map(toStep),
    state: states.toDomain(m.state) ?? "draft",
  };
}

function toStep(m: StepMessage): WorkflowStep {
  return { name: m.name, kind: m.kind, config: m.config ?? {}, dependsOn: m.dependsOn };
}

function toMessage(workflow: Workflow): WorkflowMessage {
  return create(WorkflowSchema, {
    id: workflow.id,
    displayName: workflow.displayName,
    description: workflow.description,
    steps: workflow.steps.map((s) => ({ name: s.name, kind: s.kind, config: s.config, dependsOn: [...s.dependsOn] })),
    state: states.toMessage(workflow.state),
    revision: workflow.revision,
    etag: etagOf(workflow.revision),
    createTime: timestampFromDate(workflow.createTime),
    updateTime: timestampFromDate(workflow.updateTime),
  });
}
