import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { Agent_State, AgentService } from "../../../gen/anvil/agents/v1/agents_pb.js";
import { useCan } from "../caller.js";
import { Field } from "../components/field.js";
import { ErrorMessage, errorReport } from "../errors.js";
import { ListStatus } from "../components/list-status.js";
import { Pager, usePageTokens } from "../paging.js";
import { Link } from "../router.js";

/** Agents: the list, and creating one (field violations at their fields) for those who may write them. */
export function Agents() {
  const canWrite = useCan("agents.write");
  const paging = usePageTokens();
  const list = useQuery(AgentService.method.listAgents, { pageSize: 25, pageToken: paging.pageToken }, { placeholderData: (p) => p });
  const agents = list.data?.agents ?? [];
  return (
    <>
      <h1 tabIndex={-1}>Agents</h1>
      {canWrite && <CreateAgent />}
      <ListStatus query={list} count={agents.length} loading="Loading agents…" empty={<>No agents yet. An agent is a model with instructions and tools that an IPA binds to a workflow's agent steps.</>}>
        <table>
          <caption className="visually-hidden">Agents, page {paging.page}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Model</th>
              <th scope="col">Tools</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {agents.map((a) => (
              <tr key={a.id}>
                <td>
                  <Link to={`/agents/${a.id}`}>{a.displayName}</Link>
                </td>
                <td className="mono">{a.model}</td>
                <td>{a.tools.join(", ") || "—"}</td>
                <td>{a.state === Agent_State.DISABLED ? "Disabled" : "Enabled"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ListStatus>
      <Pager label="Agent pages" paging={paging} nextPageToken={list.data?.nextPageToken} />
    </>
  );
}

function CreateAgent() {
  const client = useQueryClient();
  const [draft, setDraft] = useState({ displayName: "", model: "", instructions: "", tools: "" });
  const create = useMutation(AgentService.method.createAgent, {
    onSuccess: () => {
      setDraft({ displayName: "", model: "", instructions: "", tools: "" });
      void client.invalidateQueries();
    },
  });
  const report = create.isError ? errorReport(create.error) : undefined;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const tools = draft.tools.split(",").map((t) => t.trim()).filter((t) => t !== "");
    create.mutate({ agent: { displayName: draft.displayName, model: draft.model, instructions: draft.instructions, tools } });
  };
  return (
    <section aria-label="Create an agent">
      <h2>Create an agent</h2>
      <form className="filters" onSubmit={submit} aria-label="New agent">
        <Field label="Agent name" path="agent.display_name" report={report} value={draft.displayName} onChange={(e) => setDraft({ ...draft, displayName: e.target.value })} />
        <Field label="Model" path="agent.model" report={report} value={draft.model} onChange={(e) => setDraft({ ...draft, model: e.target.value })} placeholder="claude-sonnet-4" />
        <Field label="Instructions" path="agent.instructions" report={report} value={draft.instructions} onChange={(e) => setDraft({ ...draft, instructions: e.target.value })} />
        <Field label="Tools" path="agent.tools" report={report} value={draft.tools} onChange={(e) => setDraft({ ...draft, tools: e.target.value })} placeholder="read_file, search" />
        <div className="actions">
          <button type="submit" disabled={create.isPending}>
            Create agent
          </button>
        </div>
      </form>
      {create.isError && <ErrorMessage error={create.error} />}
      {create.isSuccess && <p role="status">Created agent “{create.data.agent?.displayName}”.</p>}
    </section>
  );
}
