import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type BatchCompleteTasksRequest,
  type BatchCompleteTasksResponse,
  BatchCompleteTasksResponseSchema,
  type ClaimTaskRequest,
  type ClaimTaskResponse,
  ClaimTaskResponseSchema,
  type CompleteTaskRequest,
  type CompleteTaskResponse,
  CompleteTaskResponseSchema,
  type ReportProgressRequest,
  type ReportProgressResponse,
  ReportProgressResponseSchema,
  type StreamTasksRequest,
  StreamTasksRequestSchema,
  type StreamTasksResponse,
  StreamTasksResponseSchema,
  type UploadArtifactRequest,
  type UploadArtifactResponse,
  UploadArtifactResponseSchema,
  type WorkerService,
} from "../../gen/anvil/operations/v1/operations_pb.js";
import { credentialName } from "../auth/principal.js";
import { toStatus } from "../rpc/error-mapping.js";
import { requestContext } from "../rpc/request-context.js";
import { compileRequestValidator } from "../rpc/validation/field-rules.js";
import { FailedPreconditionError, InvalidArgumentError, type NotFoundError } from "../shared/errors.js";
import { splitUpload, toArtifactMessage } from "../artifacts/artifact-messages.js";
import type { ArtifactsService } from "../artifacts/artifacts.service.js";
import type { DrainSignals } from "./drain-signals.js";
import { durationMs, logLevels, operationStates, toOperationMessage, toTaskMessage } from "./operation-messages.js";
import type { StreamSlots } from "./stream-slots.js";
import type { TaskOutcomeReport } from "./batch-completion.js";
import type { WorkersService } from "./workers.service.js";

// The validation interceptor checks unary requests only; a server stream's
// request is checked here, with the same compiled rules.
const validateStream = compileRequestValidator(StreamTasksRequestSchema);

/** WorkerService over the wire: converts proto ⇄ domain and nothing else. */
export class WorkersHandler implements ServiceImpl<typeof WorkerService> {
  readonly #workers: WorkersService;
  readonly #calls: DrainSignals;
  readonly #waits: StreamSlots;
  readonly #artifacts: ArtifactsService;

  /** `calls` abort when the instance drains: waiting claims then return empty. `waits` caps waiting claims per credential. */
  constructor(workers: WorkersService, calls: DrainSignals, waits: StreamSlots, artifacts: ArtifactsService) {
    this.#artifacts = artifacts;
    this.#workers = workers;
    this.#calls = calls;
    this.#waits = waits;
  }

  async claimTask(req: ClaimTaskRequest, ctx: HandlerContext): Promise<ClaimTaskResponse> {
    const request = {
      kinds: req.kinds,
      workerId: req.workerId,
      maxWaitMs: durationMs(req.maxWait),
      leaseMs: durationMs(req.leaseDuration),
      maxTasks: req.maxTasks,
    };
    const context = requestContext(ctx);
    // Only a claim that may wait holds a slot: one that returns at once pins nothing.
    const release = (request.maxWaitMs ?? 0) > 0 ? this.#waits.acquire(credentialName(context.credential)) : undefined;
    const call = this.#calls.open(ctx.signal);
    try {
      const claimed = await this.#workers.claim(context, request, call.signal);
      const tasks = claimed.map(toTaskMessage);
      return create(ClaimTaskResponseSchema, { task: tasks[0], tasks });
    } finally {
      call.close();
      release?.();
    }
  }

  async *streamTasks(req: StreamTasksRequest, ctx: HandlerContext): AsyncGenerator<StreamTasksResponse> {
    const violations = await validateStream(req);
    if (violations.length > 0) {
      throw new InvalidArgumentError(`invalid request: ${violations.map((v) => `${v.field} ${v.description}`).join("; ")}`, violations);
    }
    const request = { kinds: req.kinds, workerId: req.workerId, leaseMs: durationMs(req.leaseDuration), maxInFlight: req.maxInFlight, maxDurationMs: durationMs(req.maxDuration) };
    const context = requestContext(ctx);
    // A stream is a waiting claim that does not end: it holds a slot of the same cap.
    const release = this.#waits.acquire(credentialName(context.credential));
    const call = this.#calls.open(ctx.signal);
    try {
      for await (const item of this.#workers.stream(context, request, call.signal)) {
        yield item.type === "tasks"
          ? create(StreamTasksResponseSchema, { tasks: item.tasks.map(toTaskMessage) })
          : create(StreamTasksResponseSchema, { keepAlive: { time: timestampFromDate(item.time) } });
      }
    } finally {
      call.close();
      release();
    }
  }

  async reportProgress(req: ReportProgressRequest, ctx: HandlerContext): Promise<ReportProgressResponse> {
    const report = {
      progress: req.progress,
      stage: req.stage,
      message: req.message,
      logs: req.logs.map((l) => ({ level: logLevels.toDomain(l.level) ?? "info", message: l.message })),
    };
    const answer = await this.#workers.report(requestContext(ctx), req.taskId, req.leaseToken, report);
    return create(ReportProgressResponseSchema, { cancelRequested: answer.cancelRequested, leaseExpireTime: timestampFromDate(answer.leaseExpiresAt) });
  }

  async completeTask(req: CompleteTaskRequest, ctx: HandlerContext): Promise<CompleteTaskResponse> {
    const operation = await this.#workers.complete(requestContext(ctx), req.taskId, req.leaseToken, outcomeOf(req, "result"));
    return create(CompleteTaskResponseSchema, { operation: toOperationMessage(operation) });
  }

  async batchCompleteTasks(req: BatchCompleteTasksRequest, ctx: HandlerContext): Promise<BatchCompleteTasksResponse> {
    const context = requestContext(ctx);
    const completions = req.requests.map((r, i) => ({ taskId: r.taskId, leaseToken: r.leaseToken, outcome: outcomeOf(r, `requests[${i}].result`) }));
    const answers = await this.#workers.completeBatch(context, completions);
    const results = answers.map((a) =>
      "refused" in a
        ? { taskId: a.taskId, error: toStatus(a.refused, context.requestId), reason: reasonOf(a.refused) }
        : { taskId: a.taskId, operationId: a.operation.id, operationState: operationStates.toMessage(a.operation.state) },
    );
    return create(BatchCompleteTasksResponseSchema, { results });
  }

  async uploadArtifact(requests: AsyncIterable<UploadArtifactRequest>, ctx: HandlerContext): Promise<UploadArtifactResponse> {
    const { header, content } = await splitUpload(requests);
    const artifact = await this.#artifacts.upload(requestContext(ctx), header, content);
    return create(UploadArtifactResponseSchema, { artifact: toArtifactMessage(artifact) });
  }
}

/** A refusal's reason as CompleteTask's details name it: the precondition's violation type, else the error's reason. */
function reasonOf(refused: NotFoundError | FailedPreconditionError): string {
  return refused instanceof FailedPreconditionError ? (refused.violations[0]?.type ?? refused.reason) : refused.reason;
}

/** The outcome a completion reports; INVALID_ARGUMENT (naming `field`) when it has none. */
function outcomeOf(req: CompleteTaskRequest, field: string): TaskOutcomeReport {
  const outcome = req.outcome;
  if (outcome.case === undefined) throw InvalidArgumentError.field(field, "either result or error is required");
  return outcome.case === "result"
    ? { result: outcome.value }
    : { error: { code: outcome.value.code, message: outcome.value.message, retryable: outcome.value.retryable } };
}
