import { type Message, toJsonString } from "@bufbuild/protobuf";
import {
  OperationEventSchema,
  OperationSchema,
  OperationService,
  type WatchOperationRequest,
  type WatchOperationResponse,
} from "../../../gen/anvil/operations/v1/operations_pb.js";
import { isFinal } from "../../operations/operation.js";
import { operationStates } from "../../operations/operation-messages.js";
import type { SseBinding, SseBindings } from "./event-stream.js";

/**
 * `GET /v1/operations/{id}:watch` as server-sent events: first
 * `event: operation` with the operation as it is (no `id`, so it does not
 * move the resume point), then each operation event with `id:` its
 * sequence and `event:` its payload's kind (`progress`, `log`, `stage`,
 * `completion`, `error`), data in proto3 JSON as Connect sends it;
 * keep-alives become comment lines. A reconnect at or past the final
 * sequence of a finished operation is exhausted (204).
 */
export const watchOperationSse: SseBinding = {
  resumeField: "afterSequence",
  frame(message: Message) {
    const item = (message as WatchOperationResponse).item;
    switch (item.case) {
      case "operation":
        return { event: "operation", data: toJsonString(OperationSchema, item.value) };
      case "event":
        return { id: String(item.value.sequence), event: item.value.payload.case ?? "unknown", data: toJsonString(OperationEventSchema, item.value) };
      case "keepAlive":
        return { comment: `keep-alive ${item.value.time ? new Date(Number(item.value.time.seconds) * 1000).toISOString() : ""}` };
      default:
        return { comment: "" };
    }
  },
  exhausted(first: Message, request: Message) {
    const item = (first as WatchOperationResponse).item;
    if (item.case !== "operation") return false;
    const state = operationStates.toDomain(item.value.state);
    // The watcher ends after the operation in exactly this case (operation-watcher.ts).
    return state !== undefined && isFinal(state) && (request as WatchOperationRequest).afterSequence >= item.value.lastSequence;
  },
};

/** Every server-streaming method served as server-sent events, with its binding. */
export const sseBindings: SseBindings = new Map([[OperationService.method.watchOperation, watchOperationSse]]);
