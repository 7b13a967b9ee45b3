import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type DownloadArtifactRequest,
  type DownloadArtifactResponse,
  DownloadArtifactRequestSchema,
  DownloadArtifactResponseSchema,
  type ListArtifactsRequest,
  type ListArtifactsResponse,
  ListArtifactsResponseSchema,
  type CancelOperationRequest,
  type CancelOperationResponse,
  CancelOperationResponseSchema,
  type GetOperationRequest,
  type GetOperationResponse,
  GetOperationResponseSchema,
  type ListOperationEventsRequest,
  type ListOperationEventsResponse,
  ListOperationEventsResponseSchema,
  type ListOperationsRequest,
  type ListOperationsResponse,
  ListOperationsResponseSchema,
  type OperationService,
  type WatchOperationRequest,
  type WatchOperationResponse,
  WatchOperationRequestSchema,
  WatchOperationResponseSchema,
} from "../../gen/anvil/operations/v1/operations_pb.js";
import { requestContext } from "../rpc/request-context.js";
import { contentOfIfRange, toArtifactMessage } from "../artifacts/artifact-messages.js";
import type { ArtifactsService } from "../artifacts/artifacts.service.js";
import { compileRequestValidator } from "../rpc/validation/field-rules.js";
import { credentialName } from "../auth/principal.js";
import { InvalidArgumentError } from "../shared/errors.js";
import type { DrainSignals } from "./drain-signals.js";
import type { OperationWatcher } from "./operation-watcher.js";
import { operationStates, toEventMessage, toOperationMessage } from "./operation-messages.js";
import type { OperationsService } from "./operations.service.js";
import type { StreamSlots } from "./stream-slots.js";

// The validation interceptor checks unary requests only; a server stream's
// single request is checked here, against the same proto rules.
const validateWatch = compileRequestValidator(WatchOperationRequestSchema);
const validateDownload = compileRequestValidator(DownloadArtifactRequestSchema);

/** OperationService over the wire: converts proto ⇄ domain and nothing else. */
export class OperationsHandler implements ServiceImpl<typeof OperationService> {
  readonly #operations: OperationsService;
  readonly #watcher: OperationWatcher;
  readonly #slots: StreamSlots;
  readonly #calls: DrainSignals;
  readonly #artifacts: ArtifactsService;

  /** `calls` abort when the instance drains: watches then end early, with UNAVAILABLE. */
  constructor(operations: OperationsService, watcher: OperationWatcher, slots: StreamSlots, calls: DrainSignals, artifacts: ArtifactsService) {
    this.#operations = operations;
    this.#artifacts = artifacts;
    this.#watcher = watcher;
    this.#slots = slots;
    this.#calls = calls;
  }

  async getOperation(req: GetOperationRequest, ctx: HandlerContext): Promise<GetOperationResponse> {
    const operation = await this.#operations.get(requestContext(ctx), req.id);
    return create(GetOperationResponseSchema, { operation: toOperationMessage(operation) });
  }

  async listOperations(req: ListOperationsRequest, ctx: HandlerContext): Promise<ListOperationsResponse> {
    const filter = { state: operationStates.toDomain(req.state), kind: req.kind || undefined, resource: req.resource || undefined };
    const page = await this.#operations.list(requestContext(ctx), filter, { pageSize: req.pageSize, pageToken: req.pageToken });
    return create(ListOperationsResponseSchema, { operations: page.items.map(toOperationMessage), nextPageToken: page.nextPageToken });
  }

  async cancelOperation(req: CancelOperationRequest, ctx: HandlerContext): Promise<CancelOperationResponse> {
    const operation = await this.#operations.cancel(requestContext(ctx), req.id);
    return create(CancelOperationResponseSchema, { operation: toOperationMessage(operation) });
  }

  async listOperationEvents(req: ListOperationEventsRequest, ctx: HandlerContext): Promise<ListOperationEventsResponse> {
    const page = await this.#operations.events(requestContext(ctx), req.id, { pageSize: req.pageSize, pageToken: req.pageToken });
    return create(ListOperationEventsResponseSchema, { events: page.items.map(toEventMessage), nextPageToken: page.nextPageToken });
  }

  async *watchOperation(req: WatchOperationRequest, ctx: HandlerContext): AsyncGenerator<WatchOperationResponse> {
    await throwViolations(validateWatch(req));
    const context = requestContext(ctx);
    const release = this.#slots.acquire(credentialName(context.credential));
    const call = this.#calls.open(ctx.signal);
    try {
      for await (const item of this.#watcher.watch(context, req.id, Number(req.afterSequence), call.signal)) {
        if (item.type === "operation") yield create(WatchOperationResponseSchema, { item: { case: "operation", value: toOperationMessage(item.operation) } });
        else if (item.type === "event") yield create(WatchOperationResponseSchema, { item: { case: "event", value: toEventMessage(item.event) } });
        else yield create(WatchOperationResponseSchema, { item: { case: "keepAlive", value: { time: timestampFromDate(item.time) } } });
      }
    } finally {
      call.close();
      release();
    }
  }

  async listArtifacts(req: ListArtifactsRequest, ctx: HandlerContext): Promise<ListArtifactsResponse> {
    const page = await this.#artifacts.list(requestContext(ctx), req.operationId, { pageSize: req.pageSize, pageToken: req.pageToken });
    return create(ListArtifactsResponseSchema, { artifacts: page.items.map(toArtifactMessage), nextPageToken: page.nextPageToken });
  }

  async *downloadArtifact(req: DownloadArtifactRequest, ctx: HandlerContext): AsyncGenerator<DownloadArtifactResponse> {
    await throwViolations(validateDownload(req));
    const range = { offset: Number(req.offset), limit: Number(req.limit), suffixBytes: Number(req.suffixBytes), ifContent: contentOfIfRange(req.ifRange) };
    const download = await this.#artifacts.download(requestContext(ctx), req.operationId, req.name, range);
    // The description first, even for a range past the end: its size says which ranges there are.
    yield create(DownloadArtifactResponseSchema, { item: { case: "artifact", value: toArtifactMessage(download.artifact) } });
    for await (const chunk of download.bytes) yield create(DownloadArtifactResponseSchema, { item: { case: "chunk", value: chunk } });
  }
}

/** A stream's request checked against its proto rules (the validation interceptor checks unary requests only). */
async function throwViolations(check: ReturnType<typeof validateWatch>): Promise<void> {
  const violations = await check;
  if (violations.length > 0) {
    throw new InvalidArgumentError(`invalid request: ${violations.map((v) => `${v.field} ${v.description}`).join("; ")}`, violations);
  }
}
