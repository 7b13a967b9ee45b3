import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useId, useState } from "react";
import { type Agent, Agent_State, AgentService } from "../../../gen/anvil/agents/v1/agents_pb.js";
import { useCan } from "../caller.js";
import { Loaded, loadOnce, SaveOutcome } from "../components/editing.js";
import { Field } from "../components/field.js";
import { errorReport } from "../errors.js";
import { Link } from "../router.js";

/** The editable part of an agent, as the form holds it (tools as one comma-separated input). */
function draftOf(a: Agent) {
  return { displayName: a.displayName, model: a.model, instructions: a.instructions, tools: a.tools.join(", "), state: a.state === Agent_State.DISABLED ? Agent_State.DISABLED : Agent_State.ENABLED };
}

/** `/agents/<id>`: one agent, editable by those who may write agents. */
export function AgentPage({ id }: { id: string }) {
  const loaded = useQuery(AgentService.method.getAgent, { id }, loadOnce);
  return (
    <Loaded query={loaded} title="Agent" loading="Loading the agent…">
      {(data, reload) => <AgentEditor agent={data.agent!} reload={reload} />}
    </Loaded>
  );
}

function AgentEditor({ agent, reload }: { agent: Agent; reload: () => void }) {
  const canWrite = useCan("agents.write");
  const client = useQueryClient();
  const id = useId();
  const [draft, setDraft] = useState(() => draftOf(agent));
  const [base, setBase] = useState(agent);
  const update = useMutation(AgentService.method.updateAgent, {
    onSuccess: (res) => {
      setBase(res.agent!);
      void client.invalidateQueries();
    },
  });
  const report = update.isError ? errorReport(update.error) : undefined;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const tools = draft.tools.split(",").map((t) => t.trim()).filter((t) => t !== "");
    // The etag makes the update conditional: someone else's change meanwhile is ABORTED, never overwritten.
    update.mutate({
      agent: { id: base.id, etag: base.etag, displayName: draft.displayName, model: draft.model, instructions: draft.instructions, tools, state: draft.state },
      updateMask: { paths: ["display_name", "model", "instructions", "tools", "state"] },
    });
  };
  return (
    <>
      <p>
        <Link to="/agents">← All agents</Link>
      </p>
      <h1 tabIndex={-1}>{base.displayName}</h1>
      <p className="hint">
        Agent · <span className="mono">{base.id}</span>
      </p>
      <form className="editor" onSubmit={submit} aria-label="Agent">
        <Field label="Name" path="agent.display_name" report={report} value={draft.displayName} readOnly={!canWrite} onChange={(e) => setDraft({ ...draft, displayName: e.target.value })} />
        <Field label="Model" path="agent.model" report={report} value={draft.model} readOnly={!canWrite} onChange={(e) => setDraft({ ...draft, model: e.target.value })} />
        <Field label="Instructions" path="agent.instructions" report={report} value={draft.instructions} readOnly={!canWrite} onChange={(e) => setDraft({ ...draft, instructions: e.target.value })} />
        <Field label="Tools" path="agent.tools" report={report} value={draft.tools} readOnly={!canWrite} placeholder="read_file, search" onChange={(e) => setDraft({ ...draft, tools: e.target.value })} />
        <div className="field">
          <label htmlFor={`${id}-state`}>State</label>
          <select id={`${id}-state`} value={draft.state} disabled={!canWrite} onChange={(e) => setDraft({ ...draft, state: Number(e.target.value) })}>
            <option value={Agent_State.ENABLED}>Enabled</option>
            <option value={Agent_State.DISABLED}>Disabled</option>
          </select>
        </div>
        <SaveOutcome error={update.error} saved={update.isSuccess ? `Saved “${base.displayName}”.` : undefined} reload={reload} />
        {canWrite && (
          <div className="actions">
            <button type="submit" disabled={update.isPending}>
              Save changes
            </button>
          </div>
        )}
      </form>
    </>
  );
}
