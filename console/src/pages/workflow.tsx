import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useId, useState } from "react";
import { type Workflow, Workflow_State, WorkflowService } from "../../../gen/anvil/workflows/v1/workflows_pb.js";
import { useCan } from "../caller.js";
import { Loaded, loadOnce, SaveOutcome } from "../components/editing.js";
import { Field } from "../components/field.js";
import { RevisionCompare } from "../components/revision-compare.js";
import { StepGraph } from "../components/step-graph.js";
import { ErrorMessage, errorReport } from "../errors.js";
import { Link, navigate } from "../router.js";
import { workflowStates } from "../workflows.js";

/** The editable part of a workflow, as the form holds it. */
interface Draft {
  displayName: string;
  description: string;
  state: Workflow_State;
  steps: Array<{ name: string; kind: string; dependsOn: string }>;
}

function draftOf(w: Workflow | undefined): Draft {
  return {
    displayName: w?.displayName ?? "",
    description: w?.description ?? "",
    state: w?.state ?? Workflow_State.DRAFT,
    steps: w?.steps.map((s) => ({ name: s.name, kind: s.kind, dependsOn: s.dependsOn.join(", ") })) ?? [{ name: "", kind: "", dependsOn: "" }],
  };
}

function workflowOf(d: Draft) {
  return {
    displayName: d.displayName,
    description: d.description,
    state: d.state,
    steps: d.steps.map((s) => ({
      name: s.name,
      kind: s.kind,
      dependsOn: s.dependsOn
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x !== ""),
    })),
  };
}

/** `/workflows/new` and `/workflows/<id>`: the loaded workflow in its editor. */
export function WorkflowPage({ id }: { id: string | undefined }) {
  const loaded = useQuery(WorkflowService.method.getWorkflow, id === undefined ? undefined : { id }, { enabled: id !== undefined, ...loadOnce });
  if (id === undefined) return <WorkflowEditor workflow={undefined} reload={() => undefined} />;
  return (
    <Loaded query={loaded} title="Workflow" loading="Loading the workflow…">
      {(data, reload) => <WorkflowEditor workflow={data.workflow!} reload={reload} />}
    </Loaded>
  );
}

function WorkflowEditor({ workflow, reload }: { workflow: Workflow | undefined; reload: () => void }) {
  const canWrite = useCan("workflows.write");
  const client = useQueryClient();
  const [draft, setDraft] = useState(() => draftOf(workflow));
  const [base, setBase] = useState(workflow);
  const id = useId();
  const create = useMutation(WorkflowService.method.createWorkflow, {
    onSuccess: (res) => {
      void client.invalidateQueries();
      navigate(`/workflows/${res.workflow!.id}`);
    },
  });
  const update = useMutation(WorkflowService.method.updateWorkflow, {
    onSuccess: (res) => {
      setBase(res.workflow);
      void client.invalidateQueries();
    },
  });
  const run = useMutation(WorkflowService.method.runWorkflow, { onSuccess: (res) => navigate(`/operations/${res.operation!.id}`) });
  const saving = base === undefined ? create : update;
  const report = saving.isError ? errorReport(saving.error) : undefined;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (base === undefined) create.mutate({ workflow: workflowOf(draft) });
    // The etag makes the update conditional: someone else's change meanwhile is ABORTED, never overwritten.
    else update.mutate({ workflow: { ...workflowOf(draft), id: base.id, etag: base.etag }, updateMask: { paths: ["display_name", "description", "steps", "state"] } });
  };
  const setStep = (i: number, patch: Partial<Draft["steps"][number]>) =>
    setDraft({ ...draft, steps: draft.steps.map((s, j) => (j === i ? { ...s, ...patch } : s)) });
  return (
    <>
      <p>
        <Link to="/workflows">← All workflows</Link>
      </p>
      <h1 tabIndex={-1}>{base === undefined ? "New workflow" : base.displayName}</h1>
      {base !== undefined && (
        <p className="hint">
          Revision {base.revision} · <span className="mono">{base.id}</span>
        </p>
      )}
      <form className="editor" onSubmit={submit} aria-label="Workflow">
        <Field label="Name" path="workflow.display_name" report={report} value={draft.displayName} readOnly={!canWrite} onChange={(e) => setDraft({ ...draft, displayName: e.target.value })} />
        <Field label="Description" path="workflow.description" report={report} value={draft.description} readOnly={!canWrite} onChange={(e) => setDraft({ ...draft, description: e.target.value })} />
        <div className="field">
          <label htmlFor={`${id}-state`}>State</label>
          <select id={`${id}-state`} value={draft.state} disabled={!canWrite} onChange={(e) => setDraft({ ...draft, state: Number(e.target.value) })}>
            {workflowStates.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </div>
        <fieldset className="steps-editor">
          <legend>Steps</legend>
          {report?.fields.get("workflow.steps") && <p className="field-error">{report.fields.get("workflow.steps")}</p>}
          {draft.steps.map((s, i) => (
            <div className="step-row" key={i} role="group" aria-label={`Step ${i + 1}`}>
              <Field label={`Step ${i + 1} name`} path={`workflow.steps[${i}].name`} report={report} value={s.name} readOnly={!canWrite} onChange={(e) => setStep(i, { name: e.target.value })} />
              <Field label={`Step ${i + 1} kind`} path={`workflow.steps[${i}].kind`} report={report} value={s.kind} readOnly={!canWrite} onChange={(e) => setStep(i, { kind: e.target.value })} />
              <Field
                label={`Step ${i + 1} depends on`}
                path={`workflow.steps[${i}].depends_on`}
                report={report}
                value={s.dependsOn}
                readOnly={!canWrite}
                placeholder="comma-separated step names"
                onChange={(e) => setStep(i, { dependsOn: e.target.value })}
              />
              {canWrite && draft.steps.length > 1 && (
                <button type="button" className="secondary" onClick={() => setDraft({ ...draft, steps: draft.steps.filter((_, j) => j !== i) })}>
                  Remove step {i + 1}
                </button>
              )}
            </div>
          ))}
          {canWrite && (
            <button type="button" className="secondary" onClick={() => setDraft({ ...draft, steps: [...draft.steps, { name: "", kind: "", dependsOn: "" }] })}>
              Add a step
            </button>
          )}
        </fieldset>
        <SaveOutcome error={saving.error} saved={update.isSuccess ? `Saved revision ${base?.revision}.` : undefined} reload={reload} />
        {canWrite && (
          <div className="actions">
            <button type="submit" disabled={saving.isPending}>
              {base === undefined ? "Create workflow" : "Save changes"}
            </button>
            {base !== undefined && (
              <button type="button" className="secondary" disabled={run.isPending} onClick={() => run.mutate({ id: base.id })}>
                Run workflow
              </button>
            )}
          </div>
        )}
        {run.isError && <ErrorMessage error={run.error} />}
      </form>
      {base !== undefined && (
        <>
          <h2>Step graph</h2>
          <StepGraph steps={base.steps} />
          <section aria-labelledby="revisions-heading">
            <h2 id="revisions-heading">Revisions side by side</h2>
            <RevisionCompare id={base.id} />
          </section>
        </>
      )}
    </>
  );
}
