import { useQuery } from "@connectrpc/connect-query";
import { useId } from "react";
import { AgentService } from "../../../gen/anvil/agents/v1/agents_pb.js";
import type { Workflow } from "../../../gen/anvil/workflows/v1/workflows_pb.js";

/** The agent steps of a workflow: the steps an IPA must bind to an agent. */
export function agentSteps(workflow: Workflow | undefined): string[] {
  return workflow?.steps.filter((s) => s.kind === "agent").map((s) => s.name) ?? [];
}

/** The bindings to send: only the workflow's agent steps that have an agent chosen. */
export function bindingsFor(workflow: Workflow | undefined, bindings: Readonly<Record<string, string>>): Record<string, string> {
  const steps = agentSteps(workflow);
  return Object.fromEntries(Object.entries(bindings).filter(([step, agent]) => agent !== "" && steps.includes(step)));
}

/** One labelled select per agent step of `workflow` ("Agent for step review"), choosing among the tenant's agents. */
export function AgentBindings({
  workflow,
  bindings,
  onChange,
  disabled = false,
}: {
  workflow: Workflow | undefined;
  bindings: Readonly<Record<string, string>>;
  onChange: (bindings: Record<string, string>) => void;
  disabled?: boolean;
}) {
  const agents = useQuery(AgentService.method.listAgents, { pageSize: 100 });
  const id = useId();
  return (
    <>
      {agentSteps(workflow).map((step) => (
        <div className="field" key={step}>
          <label htmlFor={`${id}-${step}`}>Agent for step {step}</label>
          <select id={`${id}-${step}`} value={bindings[step] ?? ""} disabled={disabled} onChange={(e) => onChange({ ...bindings, [step]: e.target.value })}>
            <option value="">Choose an agent…</option>
            {agents.data?.agents.map((a) => (
              <option key={a.id} value={a.id}>
                {a.displayName}
              </option>
            ))}
          </select>
        </div>
      ))}
    </>
  );
}
