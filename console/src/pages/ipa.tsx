import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useId, useState } from "react";
import { type Ipa, Ipa_State, IpaService } from "../../../gen/anvil/ipas/v1/ipas_pb.js";
import { WorkflowService } from "../../../gen/anvil/workflows/v1/workflows_pb.js";
import { useCan } from "../caller.js";
import { AgentBindings, bindingsFor } from "../components/agent-bindings.js";
import { Loaded, loadOnce, SaveOutcome } from "../components/editing.js";
import { Field } from "../components/field.js";
import { ErrorMessage, errorReport } from "../errors.js";
import { ipaStateLabels } from "../ipas.js";
import { Link, navigate } from "../router.js";

/** `/ipas/<id>`: one IPA — its name, workflow and agents editable, deploy, undeploy and execute — for those who may write IPAs. */
export function IpaPage({ id }: { id: string }) {
  const loaded = useQuery(IpaService.method.getIpa, { id }, loadOnce);
  return (
    <Loaded query={loaded} title="IPA" loading="Loading the IPA…">
      {(data, reload) => <IpaEditor ipa={data.ipa!} reload={reload} />}
    </Loaded>
  );
}

const sameBindings = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

function IpaEditor({ ipa, reload }: { ipa: Ipa; reload: () => void }) {
  const canWrite = useCan("ipas.write");
  const client = useQueryClient();
  const id = useId();
  const [draft, setDraft] = useState({ displayName: ipa.displayName, workflowId: ipa.workflowId, bindings: { ...ipa.agentBindings } });
  const [base, setBase] = useState(ipa);
  // Which action the person took last: its outcome is the one shown.
  const [acted, setActed] = useState<"save" | "deploy" | "undeploy" | "execute">();
  const workflows = useQuery(WorkflowService.method.listWorkflows, { pageSize: 100 });
  const changed = {
    onSuccess: (res: { ipa?: Ipa }) => {
      setBase(res.ipa!);
      void client.invalidateQueries();
    },
  };
  const update = useMutation(IpaService.method.updateIpa, changed);
  const deploy = useMutation(IpaService.method.deployIpa, changed);
  const undeploy = useMutation(IpaService.method.undeployIpa, changed);
  const execute = useMutation(IpaService.method.executeIpa, { onSuccess: (res) => navigate(`/operations/${res.operation!.id}`) });
  const deployed = base.state === Ipa_State.DEPLOYED;
  const workflow = workflows.data?.workflows.find((w) => w.id === draft.workflowId);
  const report = update.isError ? errorReport(update.error) : undefined;
  const outcome = acted === undefined ? undefined : { save: update, deploy, undeploy, execute }[acted];
  const saved = !outcome?.isSuccess
    ? undefined
    : acted === "save"
      ? `Saved “${base.displayName}”.`
      : acted === "deploy"
        ? `Deployed, pinned to workflow revision ${base.deployedRevision}.`
        : acted === "undeploy"
          ? "Undeployed: retired until deployed again."
          : undefined;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setActed("save");
    const agentBindings = bindingsFor(workflow, draft.bindings);
    // Only what changed is named: renaming a deployed IPA is allowed, rebinding it is not.
    const paths = ["display_name"];
    if (draft.workflowId !== base.workflowId) paths.push("workflow_id");
    if (!sameBindings(agentBindings, base.agentBindings)) paths.push("agent_bindings");
    update.mutate({ ipa: { id: base.id, etag: base.etag, displayName: draft.displayName, workflowId: draft.workflowId, agentBindings }, updateMask: { paths } });
  };
  const act = (action: "deploy" | "undeploy" | "execute") => {
    setActed(action);
    if (action === "execute") execute.mutate({ id: base.id });
    else (action === "deploy" ? deploy : undeploy).mutate({ id: base.id, etag: base.etag });
  };
  const busy = [update, deploy, undeploy, execute].some((m) => m.isPending);
  return (
    <>
      <p>
        <Link to="/ipas">← All IPAs</Link>
      </p>
      <h1 tabIndex={-1}>{base.displayName}</h1>
      <dl className="facts">
        <dt>State</dt>
        <dd data-testid="ipa-state">{ipaStateLabels[base.state]}</dd>
        <dt>Deployed revision</dt>
        <dd>{base.deployedRevision || "—"}</dd>
      </dl>
      <form className="editor" onSubmit={submit} aria-label="IPA">
        <Field label="Name" path="ipa.display_name" report={report} value={draft.displayName} readOnly={!canWrite} onChange={(e) => setDraft({ ...draft, displayName: e.target.value })} />
        <div className="field">
          <label htmlFor={`${id}-wf`}>Workflow</label>
          <select
            id={`${id}-wf`}
            value={draft.workflowId}
            disabled={!canWrite || deployed}
            aria-describedby={deployed ? `${id}-deployed` : undefined}
            onChange={(e) => setDraft({ ...draft, workflowId: e.target.value })}
          >
            {workflow === undefined && <option value={draft.workflowId}>{draft.workflowId}</option>}
            {workflows.data?.workflows.map((w) => (
              <option key={w.id} value={w.id}>
                {w.displayName}
              </option>
            ))}
          </select>
        </div>
        <AgentBindings workflow={workflow} bindings={draft.bindings} disabled={!canWrite || deployed} onChange={(bindings) => setDraft({ ...draft, bindings })} />
        {deployed && canWrite && (
          <p id={`${id}-deployed`} className="hint">
            Deployed: undeploy it to change its workflow or agents.
          </p>
        )}
        {outcome !== undefined && acted !== "execute" && <SaveOutcome error={outcome.error} saved={saved} reload={reload} />}
        {acted === "execute" && execute.isError && <ErrorMessage error={execute.error} />}
        {canWrite && (
          <div className="actions">
            <button type="submit" disabled={busy}>
              Save changes
            </button>
            {deployed ? (
              <>
                <button type="button" disabled={busy} onClick={() => act("execute")}>
                  Execute
                </button>
                <button type="button" className="secondary" disabled={busy} onClick={() => act("undeploy")}>
                  Undeploy
                </button>
              </>
            ) : (
              <button type="button" className="secondary" disabled={busy} onClick={() => act("deploy")}>
                Deploy
              </button>
            )}
          </div>
        )}
      </form>
    </>
  );
}
