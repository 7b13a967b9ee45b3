import { create } from "@bufbuild/protobuf";
import { type Duration, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  CompensationRecord_Outcome,
  CompensationRecordSchema,
  LogLine_Level,
  LogLineSchema,
  OperationEvent_CompensationChange_Phase,
  OperationEvent_CompensationChangeSchema,
  OperationEvent_CompletionSchema,
  OperationEvent_ProgressSchema,
  OperationEvent_StageChangeSchema,
  OperationEvent_TaskErrorSchema,
  type Operation as OperationMessage,
  type OperationEvent as EventMessage,
  OperationEventSchema,
  OperationSchema,
  Operation_State,
  type Task as TaskMessage,
  TaskSchema,
} from "../../gen/anvil/operations/v1/operations_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { enumMapping } from "../rpc/enum-mapping.js";
import type { EventPayload, LogLevel, Operation, OperationError, OperationEvent } from "./operation.js";
import type { ClaimedTask } from "./task.js";

/** Operation states on the wire. */
export const operationStates = enumMapping([
  [Operation_State.QUEUED, "queued"],
  [Operation_State.RUNNING, "running"],
  [Operation_State.SUCCEEDED, "succeeded"],
  [Operation_State.FAILED, "failed"],
  [Operation_State.CANCELLED, "cancelled"],
  [Operation_State.COMPENSATING, "compensating"],
  [Operation_State.COMPENSATION_FAILED, "compensation_failed"],
] as const);

const compensationOutcomes = enumMapping([
  [CompensationRecord_Outcome.PENDING, "pending"],
  [CompensationRecord_Outcome.SUCCEEDED, "succeeded"],
  [CompensationRecord_Outcome.FAILED, "failed"],
  [CompensationRecord_Outcome.SKIPPED, "skipped"],
] as const);

const compensationPhases = enumMapping([
  [OperationEvent_CompensationChange_Phase.STARTED, "started"],
  [OperationEvent_CompensationChange_Phase.CLAIMED, "claimed"],
  [OperationEvent_CompensationChange_Phase.COMPLETED, "completed"],
  [OperationEvent_CompensationChange_Phase.FAILED, "failed"],
] as const);

/** Log levels on the wire; unspecified reads as info. */
export const logLevels = enumMapping([
  [LogLine_Level.DEBUG, "debug"],
  [LogLine_Level.INFO, "info"],
  [LogLine_Level.WARN, "warn"],
  [LogLine_Level.ERROR, "error"],
] as const);

/** A Duration in milliseconds, or undefined when unset. */
export function durationMs(d: Duration | undefined): number | undefined {
  return d === undefined ? undefined : Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6);
}

function status(error: OperationError | null) {
  return error === null ? undefined : create(StatusSchema, { code: error.code, message: error.message });
}

/** The wire form of an operation; used by every service that returns one (starts included). */
export function toOperationMessage(op: Operation): OperationMessage {
  return create(OperationSchema, {
    id: op.id,
    kind: op.kind,
    resource: op.resource,
    state: operationStates.toMessage(op.state),
    progress: op.progress,
    stage: op.stage,
    message: op.message,
    attempt: op.attempt,
    result: op.result ?? undefined,
    error: status(op.error),
    cancelRequested: op.cancelRequested,
    compensations: op.compensations.map((c) =>
      create(CompensationRecordSchema, { step: c.step, kind: c.kind, outcome: compensationOutcomes.toMessage(c.outcome), attempt: c.attempt, error: status(c.error) }),
    ),
    lastSequence: BigInt(op.lastSequence),
    createTime: timestampFromDate(op.createTime),
    updateTime: timestampFromDate(op.updateTime),
    startTime: op.startTime ? timestampFromDate(op.startTime) : undefined,
    endTime: op.endTime ? timestampFromDate(op.endTime) : undefined,
  });
}

/** The wire form of an event: its payload becomes the `payload` oneof. */
export function toEventMessage(event: OperationEvent): EventMessage {
  return create(OperationEventSchema, {
    operationId: event.operationId,
    sequence: BigInt(event.sequence),
    time: timestampFromDate(event.time),
    step: event.step,
    payload: payloadMessage(event.payload),
  });
}

function payloadMessage(p: EventPayload): EventMessage["payload"] {
  switch (p.type) {
    case "progress":
      return { case: "progress", value: create(OperationEvent_ProgressSchema, { progress: p.progress, stepProgress: p.stepProgress, message: p.message }) };
    case "log":
      return { case: "log", value: create(LogLineSchema, { level: logLevels.toMessage(p.level as LogLevel), message: p.message }) };
    case "stage":
      return { case: "stage", value: create(OperationEvent_StageChangeSchema, { stage: p.stage }) };
    case "completion":
      return {
        case: "completion",
        value: create(OperationEvent_CompletionSchema, {
          state: operationStates.toMessage(p.state),
          result: p.result ?? undefined,
          error: status(p.error),
        }),
      };
    case "error":
      return {
        case: "error",
        value: create(OperationEvent_TaskErrorSchema, {
          code: p.code,
          message: p.message,
          retryable: p.retryable,
          attempt: p.attempt,
          willRetry: p.willRetry,
          retryTime: p.retryTime ? timestampFromDate(new Date(p.retryTime)) : undefined,
        }),
      };
    case "compensation":
      return {
        case: "compensation",
        value: create(OperationEvent_CompensationChangeSchema, {
          phase: compensationPhases.toMessage(p.phase),
          kind: p.kind,
          attempt: p.attempt,
          workerId: p.workerId,
          error: status(p.error),
          steps: [...p.steps],
        }),
      };
  }
}

/** The wire form of a claimed task, lease token included: only its worker ever sees it. */
export function toTaskMessage({ task, resource }: ClaimedTask): TaskMessage {
  return create(TaskSchema, {
    id: task.id,
    operationId: task.operationId,
    kind: task.kind,
    step: task.step,
    input: task.input,
    attempt: task.attempt,
    maxAttempts: task.maxAttempts,
    leaseToken: task.leaseToken ?? "",
    leaseExpireTime: task.leaseExpiresAt ? timestampFromDate(task.leaseExpiresAt) : undefined,
    resource,
    traceParent: task.traceParent ?? "",
    compensation: task.compensates !== null,
  });
}
