import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { useTransport } from "@connectrpc/connect-query";
import { useEffect, useState } from "react";
import { create } from "@bufbuild/protobuf";
import {
  type CompensationRecord,
  CompensationRecord_Outcome,
  CompensationRecordSchema,
  type Operation,
  type OperationEvent,
  type OperationEvent_CompensationChange,
  OperationEvent_CompensationChange_Phase,
  Operation_State,
  OperationService,
} from "../../gen/anvil/operations/v1/operations_pb.js";
import { isFinal } from "./operations.js";

/** What a watch has seen: the operation as it stands now, its events so far, and why the stream stopped if it did. */
export interface WatchedOperation {
  readonly operation: Operation | undefined;
  readonly events: readonly OperationEvent[];
  readonly error: unknown;
}

/** What the gateway's operation-level stage events (task-lifecycle.ts) say about the operation's state. */
const operationStageEffects: Readonly<Record<string, Partial<Operation>>> = {
  queued: { state: Operation_State.QUEUED },
  running: { state: Operation_State.RUNNING },
  cancelling: { cancelRequested: true },
  compensating: { state: Operation_State.COMPENSATING },
};

/** The operation's compensation records after a compensation event (the gateway's compensation.ts keeps the same). */
function compensated(op: Operation, change: OperationEvent_CompensationChange, step: string): CompensationRecord[] {
  switch (change.phase) {
    case OperationEvent_CompensationChange_Phase.STARTED:
      return change.steps.map((s) => create(CompensationRecordSchema, { step: s, outcome: CompensationRecord_Outcome.PENDING }));
    case OperationEvent_CompensationChange_Phase.COMPLETED:
    case OperationEvent_CompensationChange_Phase.FAILED: {
      const outcome = change.phase === OperationEvent_CompensationChange_Phase.COMPLETED ? CompensationRecord_Outcome.SUCCEEDED : CompensationRecord_Outcome.FAILED;
      return op.compensations.map((r) => (r.step === step ? { ...r, kind: change.kind, outcome, attempt: change.attempt, error: change.error } : r));
    }
    default:
      return op.compensations.map((r) => (r.step === step ? { ...r, kind: change.kind, attempt: change.attempt } : r));
  }
}

/** The operation after one of its events. */
function apply(op: Operation, event: OperationEvent): Operation {
  const p = event.payload;
  switch (p.case) {
    case "progress":
      return { ...op, progress: p.value.progress, message: p.value.message || op.message, lastSequence: event.sequence };
    case "stage":
      // The operation's own stage events (no step) mark its moves between queued, running and cancelling.
      return { ...op, stage: p.value.stage, ...(event.step === "" && operationStageEffects[p.value.stage]), lastSequence: event.sequence };
    case "compensation":
      return { ...op, compensations: compensated(op, p.value, event.step), lastSequence: event.sequence };
    case "completion":
      return {
        ...op,
        // Compensations still pending when a run ends never ran.
        compensations: op.compensations.map((r) => (r.outcome === CompensationRecord_Outcome.PENDING ? { ...r, outcome: CompensationRecord_Outcome.SKIPPED } : r)),
        state: p.value.state,
        error: p.value.error,
        result: p.value.result,
        // Success is all the work done; other ends keep the progress reached.
        progress: p.value.state === Operation_State.SUCCEEDED ? 1 : op.progress,
        lastSequence: event.sequence,
      };
    default:
      return { ...op, lastSequence: event.sequence };
  }
}

/**
 * Follows one operation with WatchOperation (a server stream over the same
 * Connect transport as every query): the bar moves as workers report. A
 * dropped stream is resumed after the last sequence seen; a final state or
 * an error the person must act on (not found, no permission) ends it.
 */
export function useWatchOperation(id: string): WatchedOperation {
  const transport = useTransport();
  const [state, setState] = useState<WatchedOperation>({ operation: undefined, events: [], error: undefined });
  useEffect(() => {
    const client = createClient(OperationService, transport);
    const abort = new AbortController();
    let after = 0n;
    let final = false;
    (async () => {
      while (!abort.signal.aborted && !final) {
        try {
          for await (const m of client.watchOperation({ id, afterSequence: after }, { signal: abort.signal })) {
            if (m.item.case === "operation") {
              const op = m.item.value;
              final = isFinal(op.state);
              setState((s) => ({ ...s, operation: op, error: undefined }));
            } else if (m.item.case === "event") {
              const event = m.item.value;
              after = event.sequence;
              if (event.payload.case === "completion") final = true;
              setState((s) => ({ operation: s.operation && apply(s.operation, event), events: [...s.events, event], error: undefined }));
            }
          }
        } catch (err) {
          if (abort.signal.aborted) return;
          const code = ConnectError.from(err).code;
          setState((s) => ({ ...s, error: err }));
          if (code === Code.NotFound || code === Code.PermissionDenied || code === Code.Unauthenticated || code === Code.InvalidArgument) return;
        }
        // The stream ended without a final state (a gateway draining, a proxy timeout): resume shortly.
        if (!final) await new Promise((r) => setTimeout(r, 1_000));
      }
    })();
    return () => abort.abort();
  }, [id, transport]);
  return state;
}
