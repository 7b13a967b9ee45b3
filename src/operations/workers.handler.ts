import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type ClaimTaskRequest,
  type ClaimTaskResponse,
  ClaimTaskResponseSchema,
  type CompleteTaskRequest,
  type CompleteTaskResponse,
  CompleteTaskResponseSchema,
  type ReportProgressRequest,
  type ReportProgressResponse,
  ReportProgressResponseSchema,
  type WorkerService,
} from "../../gen/anvil/operations/v1/operations_pb.js";
import { credentialName } from "../auth/principal.js";
import { requestContext } from "../rpc/request-context.js";
import { InvalidArgumentError } from "../shared/errors.js";
import type { DrainSignals } from "./drain-signals.js";
import { durationMs, logLevels, toOperationMessage, toTaskMessage } from "./operation-messages.js";
import type { StreamSlots } from "./stream-slots.js";
import type { WorkersService } from "./workers.service.js";

/** WorkerService over the wire: converts proto ⇄ domain and nothing else. */
export class WorkersHandler implements ServiceImpl<typeof WorkerService> {
  readonly #workers: WorkersService;
  readonly #calls: DrainSignals;
  readonly #waits: StreamSlots;

  /** `calls` abort when the instance drains: waiting claims then return empty. `waits` caps waiting claims per credential. */
  constructor(workers: WorkersService, calls: DrainSignals, waits: StreamSlots) {
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
    const outcome = req.outcome;
    if (outcome.case === undefined) throw InvalidArgumentError.field("result", "either result or error is required");
    const operation = await this.#workers.complete(
      requestContext(ctx),
      req.taskId,
      req.leaseToken,
      outcome.case === "result"
        ? { result: outcome.value }
        : { error: { code: outcome.value.code, message: outcome.value.message, retryable: outcome.value.retryable } },
    );
    return create(CompleteTaskResponseSchema, { operation: toOperationMessage(operation) });
  }
}
