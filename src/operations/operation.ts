import type { JsonObject } from "../shared/json.js";

/** Where an operation stands; see FinalState for the final ones. */
export type OperationState = "queued" | "running" | "compensating" | FinalState;

/** The states an operation never leaves; `compensation_failed` needs manual attention. */
export type FinalState = "succeeded" | "failed" | "cancelled" | "compensation_failed";

/** Whether `state` is final: nothing happens to the operation any more. */
export function isFinal(state: OperationState): state is FinalState {
  return state === "succeeded" || state === "failed" || state === "cancelled" || state === "compensation_failed";
}

/** How one compensation of a compensating (or compensated) run stands. */
export interface CompensationRecord {
  /** The step it undoes. */
  readonly step: string;
  readonly kind: string;
  readonly outcome: "pending" | "succeeded" | "failed" | "skipped";
  readonly attempt: number;
  readonly error: OperationError | null;
}

/** The phases of a compensation, as events report them. */
export type CompensationPhase = "started" | "claimed" | "completed" | "failed";

/** The largest event sequence an operation can reach (a PostgreSQL `integer` column). */
export const maxSequence = 2_147_483_647;

/** Why an operation (or one attempt of a task) failed: a google.rpc.Code number and a message. */
export interface OperationError {
  readonly code: number;
  readonly message: string;
}

/** google.rpc.Code values the operations core itself produces. */
export const rpcCode = { cancelled: 1, unknown: 2, deadlineExceeded: 4 } as const;

/** A long-running piece of work, as the domain sees it. */
export interface Operation {
  readonly id: string;
  /** What the work is, e.g. `workflow.run`. */
  readonly kind: string;
  /** What it acts on, e.g. `workflows/<id>`. */
  readonly resource: string;
  readonly state: OperationState;
  readonly progress: number;
  readonly stage: string;
  readonly message: string;
  readonly attempt: number;
  readonly result: JsonObject | null;
  readonly error: OperationError | null;
  readonly cancelRequested: boolean;
  /** Empty unless the operation compensated. */
  readonly compensations: readonly CompensationRecord[];
  readonly lastSequence: number;
  readonly createTime: Date;
  readonly updateTime: Date;
  readonly startTime: Date | null;
  readonly endTime: Date | null;
}

/** Severity of a worker's log line. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** What an event says happened. */
export type EventPayload =
  | { readonly type: "progress"; readonly progress: number; readonly stepProgress: number; readonly message: string }
  | { readonly type: "log"; readonly level: LogLevel; readonly message: string }
  | { readonly type: "stage"; readonly stage: string }
  | { readonly type: "completion"; readonly state: FinalState; readonly result: JsonObject | null; readonly error: OperationError | null }
  | {
      readonly type: "error";
      readonly code: number;
      readonly message: string;
      readonly retryable: boolean;
      readonly attempt: number;
      readonly willRetry: boolean;
      /** ISO time when the retry becomes claimable. */
      readonly retryTime: string | null;
    }
  | {
      readonly type: "compensation";
      readonly phase: CompensationPhase;
      readonly kind: string;
      readonly attempt: number;
      readonly workerId: string;
      readonly error: OperationError | null;
      /** For `started`: the steps whose compensations were queued. */
      readonly steps: readonly string[];
    };

/** An event about to be appended; `step` is empty for the whole operation. */
export interface NewEvent {
  readonly step: string;
  readonly payload: EventPayload;
}

/** An appended event: numbered 1, 2, 3… within its operation, without gaps. */
export interface OperationEvent extends NewEvent {
  readonly operationId: string;
  readonly sequence: number;
  readonly time: Date;
}

/** The fields of an operation the task lifecycle changes. */
export interface OperationPatch {
  readonly state?: OperationState;
  readonly progress?: number;
  readonly stage?: string;
  readonly message?: string;
  readonly attempt?: number;
  readonly result?: JsonObject | null;
  readonly error?: OperationError | null;
  readonly cancelRequested?: boolean;
  readonly compensations?: readonly CompensationRecord[];
  readonly started?: boolean;
  readonly ended?: boolean;
}

/** ListOperations filters; absent means any. */
export interface OperationFilter {
  readonly state?: OperationState | undefined;
  readonly kind?: string | undefined;
  readonly resource?: string | undefined;
}
