import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useId, useState } from "react";
import { type Ipa, Ipa_State, IpaService } from "../../../gen/anvil/ipas/v1/ipas_pb.js";
import { WorkflowService } from "../../../gen/anvil/workflows/v1/workflows_pb.js";
import { useCan } from "../caller.js";
import { ipaStateLabels } from "../ipas.js";
import { AgentBindings, bindingsFor } from "../components/agent-bindings.js";
import { Field } from "../components/field.js";
import { ErrorMessage, errorReport } from "../errors.js";
import { ListStatus } from "../components/list-status.js";
import { Pager, usePageTokens } from "../paging.js";
import { Link, navigate } from "../router.js";

/** IPAs: the list with deploy, undeploy and execute (the server's violations listed), and creating one. */
export function Ipas() {
  const canWrite = useCan("ipas.write");
  const paging = usePageTokens();
  const list = useQuery(IpaService.method.listIpas, { pageSize: 25, pageToken: paging.pageToken }, { placeholderData: (p) => p });
  const ipas = list.data?.ipas ?? [];
  return (
    <>
      <h1 tabIndex={-1}>IPAs</h1>
      {canWrite && <CreateIpa />}
      <ListStatus query={list} count={ipas.length} loading="Loading IPAs…" empty={<>No IPAs yet. An IPA runs a workflow with agents bound to its agent steps.</>}>
        <table>
          <caption className="visually-hidden">IPAs, page {paging.page}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">State</th>
              <th scope="col">Deployed revision</th>
              {canWrite && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {ipas.map((ipa) => (
              <IpaRow key={ipa.id} ipa={ipa} canWrite={canWrite} />
            ))}
          </tbody>
        </table>
      </ListStatus>
      <Pager label="IPA pages" paging={paging} nextPageToken={list.data?.nextPageToken} />
    </>
  );
}

function IpaRow({ ipa, canWrite }: { ipa: Ipa; canWrite: boolean }) {
  const client = useQueryClient();
  const done = { onSuccess: () => void client.invalidateQueries() };
  const deploy = useMutation(IpaService.method.deployIpa, done);
  const undeploy = useMutation(IpaService.method.undeployIpa, done);
  const execute = useMutation(IpaService.method.executeIpa, { onSuccess: (res) => navigate(`/operations/${res.operation!.id}`) });
  const failed = [deploy, undeploy, execute].find((m) => m.isError);
  return (
    <tr>
      <td>
        <Link to={`/ipas/${ipa.id}`}>{ipa.displayName}</Link>
      </td>
      <td>{ipaStateLabels[ipa.state]}</td>
      <td>{ipa.deployedRevision || "—"}</td>
      {canWrite && (
        <td>
          <div className="actions">
            {ipa.state !== Ipa_State.DEPLOYED ? (
              <button type="button" onClick={() => deploy.mutate({ id: ipa.id, etag: ipa.etag })} disabled={deploy.isPending}>
                Deploy {ipa.displayName}
              </button>
            ) : (
              <>
                <button type="button" onClick={() => execute.mutate({ id: ipa.id })} disabled={execute.isPending}>
                  Execute {ipa.displayName}
                </button>
                <button type="button" className="secondary" onClick={() => undeploy.mutate({ id: ipa.id, etag: ipa.etag })} disabled={undeploy.isPending}>
                  Undeploy {ipa.displayName}
                </button>
              </>
            )}
          </div>
          {failed && <ErrorMessage error={failed.error} />}
        </td>
      )}
    </tr>
  );
}

function CreateIpa() {
  const client = useQueryClient();
  const id = useId();
  const [name, setName] = useState("");
  const [workflowId, setWorkflowId] = useState("");
  const [bindings, setBindings] = useState<Record<string, string>>({});
  const workflows = useQuery(WorkflowService.method.listWorkflows, { pageSize: 100 });
  const create = useMutation(IpaService.method.createIpa, {
    onSuccess: () => {
      setName("");
      void client.invalidateQueries();
    },
  });
  const report = create.isError ? errorReport(create.error) : undefined;
  const workflow = workflows.data?.workflows.find((w) => w.id === workflowId);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({ ipa: { displayName: name, workflowId, agentBindings: bindingsFor(workflow, bindings) } });
  };
  return (
    <section aria-label="Create an IPA">
      <h2>Create an IPA</h2>
      <form className="filters" onSubmit={submit} aria-label="New IPA">
        <Field label="IPA name" path="ipa.display_name" report={report} value={name} onChange={(e) => setName(e.target.value)} />
        <div className="field">
          <label htmlFor={`${id}-wf`}>Workflow</label>
          <select id={`${id}-wf`} value={workflowId} onChange={(e) => setWorkflowId(e.target.value)}>
            <option value="">Choose a workflow…</option>
            {workflows.data?.workflows.map((w) => (
              <option key={w.id} value={w.id}>
                {w.displayName}
              </option>
            ))}
          </select>
          {report?.fields.get("ipa.workflow_id") && <p className="field-error">{report.fields.get("ipa.workflow_id")}</p>}
        </div>
        <AgentBindings workflow={workflow} bindings={bindings} onChange={setBindings} />
        <div className="actions">
          <button type="submit" disabled={create.isPending}>
            Create IPA
          </button>
        </div>
      </form>
      {create.isError && <ErrorMessage error={create.error} />}
      {create.isSuccess && <p role="status">Created IPA “{create.data.ipa?.displayName}”.</p>}
    </section>
  );
}
