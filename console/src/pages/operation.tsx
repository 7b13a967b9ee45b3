import { useMutation } from "@connectrpc/connect-query";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type OperationEvent, OperationEvent_CompensationChange_Phase, OperationService } from "../../../gen/anvil/operations/v1/operations_pb.js";
import { Can } from "../caller.js";
import { ErrorMessage } from "../errors.js";
import { compensationOutcomeLabel, isFinal, operationStateLabel, percent } from "../operations.js";
import { Link } from "../router.js";
import { useWatchOperation } from "../watch-operation.js";

/** What an event says, in words. */
function describe(event: OperationEvent): string {
  const p = event.payload;
  switch (p.case) {
    case "progress":
      return `Progress ${percent(p.value.progress)}${p.value.message ? `: ${p.value.message}` : ""}`;
    case "stage":
      return `Stage: ${p.value.stage}`;
    case "log":
      return `Log: ${p.value.message}`;
    case "completion":
      return `Finished: ${operationStateLabel(p.value.state)}${p.value.error?.message ? ` (${p.value.error.message})` : ""}`;
    case "error":
      return `Attempt ${p.value.attempt} failed: ${p.value.message}${p.value.willRetry ? " (will retry)" : ""}`;
    case "compensation":
      switch (p.value.phase) {
        case OperationEvent_CompensationChange_Phase.STARTED:
          return `Compensating ${p.value.steps.join(", ")}${p.value.error?.message ? ` after: ${p.value.error.message}` : ""}`;
        case OperationEvent_CompensationChange_Phase.CLAIMED:
          return `Compensation claimed by ${p.value.workerId} (attempt ${p.value.attempt})`;
        case OperationEvent_CompensationChange_Phase.COMPLETED:
          return "Compensation done: step undone";
        case OperationEvent_CompensationChange_Phase.FAILED:
          return `Compensation failed for good: ${p.value.error?.message ?? ""}`;
        default:
          return "Compensation";
      }
    default:
      return "Event";
  }
}

/** Each step's latest reported progress, in the order the steps first reported. */
function stepsOf(events: readonly OperationEvent[]): Array<{ name: string; progress: number }> {
  const steps = new Map<string, number>();
  for (const e of events) {
    if (e.step === "") continue;
    if (e.payload.case === "progress") steps.set(e.step, e.payload.value.stepProgress);
    else if (!steps.has(e.step)) steps.set(e.step, 0);
  }
  return [...steps].map(([name, progress]) => ({ name, progress }));
}

/** One operation, followed live by WatchOperation: progress, stage, steps, the event timeline, and cancel. */
export function OperationPage({ id }: { id: string }) {
  const watched = useWatchOperation(id);
  const cancel = useMutation(OperationService.method.cancelOperation);
  const op = watched.operation;
  return (
    <>
      <p>
        <Link to="/operations">← All operations</Link>
      </p>
      <h1 tabIndex={-1}>Operation {id.slice(0, 8)}</h1>
      {watched.error !== undefined && <ErrorMessage error={watched.error} />}
      {op === undefined ? (
        watched.error === undefined && <p role="status">Connecting to the operation…</p>
      ) : (
        <>
          <dl className="facts">
            <div>
              <dt>Kind</dt>
              <dd>{op.kind}</dd>
            </div>
            <div>
              <dt>Resource</dt>
              <dd className="mono">{op.resource}</dd>
            </div>
            <div>
              <dt>State</dt>
              <dd data-testid="operation-state">{operationStateLabel(op.state)}{op.cancelRequested && !isFinal(op.state) ? " (cancelling)" : ""}</dd>
            </div>
            <div>
              <dt>Stage</dt>
              <dd>{op.stage || "—"}</dd>
            </div>
          </dl>
          <div className="progress-line">
            <progress max={1} value={op.progress} aria-label="Operation progress" aria-valuetext={percent(op.progress)} />
            <span data-testid="operation-progress">{percent(op.progress)}</span>
            {op.message && <span className="hint">{op.message}</span>}
          </div>
          <Can permission="operations.write">
            <button
              type="button"
              className="secondary"
              disabled={isFinal(op.state) || op.cancelRequested || cancel.isPending}
              onClick={() => cancel.mutate({ id })}
            >
              Cancel operation
            </button>
          </Can>
          {cancel.isError && <ErrorMessage error={cancel.error} />}
          {op.error?.message && (
            <div role="alert" className="error">
              <strong>{operationStateLabel(op.state)}</strong>
              <p>{op.error.message}</p>
            </div>
          )}
          <h2>Steps</h2>
          {stepsOf(watched.events).length === 0 ? (
            <p className="empty">No step has reported yet.</p>
          ) : (
            <ul className="steps">
              {stepsOf(watched.events).map((s) => (
                <li key={s.name}>
                  <span className="mono">{s.name}</span> <progress max={1} value={s.progress} aria-label={`Step ${s.name}`} /> {percent(s.progress)}
                </li>
              ))}
            </ul>
          )}
          {op.compensations.length > 0 && (
            <>
              <h2>Compensations</h2>
              <p className="hint">A step failed or the run was cancelled: what the completed steps did is undone, latest first.</p>
              <ul className="steps" aria-label="Compensations">
                {op.compensations.map((r) => (
                  <li key={r.step}>
                    <span className="mono">{r.step}</span> {compensationOutcomeLabel(r.outcome)}
                    {r.error?.message ? ` (${r.error.message})` : ""}
                  </li>
                ))}
              </ul>
            </>
          )}
          <h2>Timeline</h2>
          {watched.events.length === 0 ? (
            <p className="empty">Nothing has happened yet: the operation waits for a worker.</p>
          ) : (
            <ol className="timeline" aria-label="Events">
              {watched.events.map((e) => (
                <li key={e.sequence.toString()}>
                  <time dateTime={e.time ? timestampDate(e.time).toISOString() : undefined}>{e.time ? timestampDate(e.time).toLocaleTimeString() : ""}</time>{" "}
                  {e.step && <span className="mono">[{e.step}]</span>} {describe(e)}
                </li>
              ))}
            </ol>
          )}
        </>
      )}
    </>
  );
}
