import type { JsonValue } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  type Operation,
  Operation_State,
  type OperationEvent,
  OperationEvent_CompensationChange_Phase,
  type WatchOperationResponse,
} from "../../../gen/anvil/operations/v1/operations_pb.js";
import { Code as RpcCode } from "../../../gen/google/rpc/code_pb.js";
import { logLevels } from "../../operations/operation-messages.js";

/** A typed message of a WebSocket watch, snake_case keys (README: "WebSocket"). */
export type WatchSocketMessage = { readonly type: "progress" | "log" | "error" | "completion" | "compensation"; readonly operation_id: string; readonly sequence: number } & Record<string, JsonValue>;

/**
 * Turns a WatchOperation stream into the WebSocket protocol's typed
 * messages. Every operation event becomes exactly one message, so
 * sequences have no gaps and `after_sequence` resumes exactly: progress
 * and stage changes are `progress` messages (each carries the progress in
 * percent and the stage as they stand after the event), logs `log`, task
 * errors `error`, compensation changes `compensation`, and the completion
 * `completion`. The leading operation
 * only seeds the progress and stage; keep-alives become WebSocket pings.
 */
export class WatchSocketMessages {
  #progress = 0;
  #stage = "";

  /** The message of one stream item, or undefined for items that are not events. */
  next(item: WatchOperationResponse["item"]): WatchSocketMessage | undefined {
    if (item.case === "operation") {
      this.#seed(item.value);
      return undefined;
    }
    if (item.case !== "event") return undefined;
    return this.#message(item.value);
  }

  #seed(operation: Operation): void {
    this.#progress = operation.progress;
    this.#stage = operation.stage;
  }

  #message(event: OperationEvent): WatchSocketMessage {
    const common = { operation_id: event.operationId, sequence: Number(event.sequence), step: event.step };
    const timestamp = event.time ? timestampDate(event.time).toISOString() : new Date().toISOString();
    const p = event.payload;
    switch (p.case) {
      case "progress":
        this.#progress = p.value.progress;
        return { type: "progress", ...common, progress: percent(this.#progress), stage: this.#stage, message: p.value.message, timestamp };
      case "stage":
        this.#stage = p.value.stage;
        return { type: "progress", ...common, progress: percent(this.#progress), stage: this.#stage, message: "", timestamp };
      case "log":
        return { type: "log", ...common, level: logLevels.toDomain(p.value.level) ?? "info", message: p.value.message, timestamp };
      case "error":
        return {
          type: "error",
          ...common,
          error_code: RpcCode[p.value.code] ?? "UNKNOWN",
          error_message: p.value.message,
          details: {
            retryable: p.value.retryable,
            attempt: p.value.attempt,
            will_retry: p.value.willRetry,
            retry_time: p.value.retryTime ? timestampDate(p.value.retryTime).toISOString() : null,
          },
          timestamp,
        };
      case "compensation":
        return {
          type: "compensation",
          ...common,
          phase: (OperationEvent_CompensationChange_Phase[p.value.phase] ?? "PHASE_UNSPECIFIED").replace("PHASE_", "").toLowerCase(),
          kind: p.value.kind,
          attempt: p.value.attempt,
          worker_id: p.value.workerId,
          steps: [...p.value.steps],
          error: p.value.error ? { code: RpcCode[p.value.error.code] ?? "UNKNOWN", message: p.value.error.message } : null,
          timestamp,
        };
      case "completion":
        return {
          type: "completion",
          ...common,
          status: (Operation_State[p.value.state] ?? "STATE_UNSPECIFIED").toLowerCase(),
          result: p.value.result ?? null,
          error: p.value.error ? { code: RpcCode[p.value.error.code] ?? "UNKNOWN", message: p.value.error.message } : null,
          timestamp,
        };
      default:
        // A payload kind this gateway does not know yet still takes its sequence: a log line saying so.
        return { type: "log", ...common, level: "warn", message: "event of an unknown kind", timestamp };
    }
  }
}

/** A fraction 0..1 as a percentage with at most two decimals. */
function percent(fraction: number): number {
  return Math.round(fraction * 10_000) / 100;
}
