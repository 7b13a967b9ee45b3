import type { PreconditionViolation } from "../shared/errors.js";
import type { Ipa } from "./ipa.js";

/** What deploy needs to know about the workflow an IPA names. */
export interface DeployedWorkflow {
  readonly id: string;
  readonly state: string;
  readonly revision: number;
  readonly steps: ReadonlyArray<{ readonly name: string; readonly kind: string }>;
}

/** What deploy needs to know about a bound agent. */
export interface DeployedAgent {
  readonly id: string;
  readonly state: string;
}

/**
 * Everything that stops `ipa` from being deployed, one violation per
 * problem so a client can fix them all at once: the workflow must exist and
 * be active; every bound agent must exist and be enabled; every step of kind
 * `agentKind` needs a binding; and bindings may only name such steps.
 * `workflow` is undefined when it does not exist; `agents` holds the bound
 * agents that exist. An empty result means the IPA may be deployed.
 */
export function deploymentViolations(
  ipa: Ipa,
  workflow: DeployedWorkflow | undefined,
  agents: ReadonlyMap<string, DeployedAgent>,
  agentKind: string,
): PreconditionViolation[] {
  const out: PreconditionViolation[] = [];
  const workflowSubject = `workflows/${ipa.workflowId}`;
  if (!workflow) {
    out.push({ type: "WORKFLOW_NOT_FOUND", subject: workflowSubject, description: "the IPA's workflow does not exist" });
  } else if (workflow.state !== "active") {
    out.push({ type: "WORKFLOW_NOT_ACTIVE", subject: workflowSubject, description: `the workflow is ${workflow.state}, not active` });
  }
  for (const agentId of new Set(Object.values(ipa.agentBindings))) {
    const agent = agents.get(agentId);
    if (!agent) out.push({ type: "AGENT_NOT_FOUND", subject: `agents/${agentId}`, description: "a bound agent does not exist" });
    else if (agent.state !== "enabled") out.push({ type: "AGENT_DISABLED", subject: `agents/${agentId}`, description: "a bound agent is disabled" });
  }
  if (workflow) {
    const kinds = new Map(workflow.steps.map((s) => [s.name, s.kind]));
    for (const step of workflow.steps) {
      if (step.kind === agentKind && !Object.hasOwn(ipa.agentBindings, step.name)) {
        out.push({ type: "STEP_UNBOUND", subject: `steps/${step.name}`, description: `step "${step.name}" is of kind ${agentKind} and has no agent binding` });
      }
    }
    for (const step of Object.keys(ipa.agentBindings)) {
      const kind = kinds.get(step);
      if (kind === undefined) {
        out.push({ type: "STEP_NOT_FOUND", subject: `steps/${step}`, description: `a binding names step "${step}", which the workflow does not have` });
      } else if (kind !== agentKind) {
        out.push({ type: "STEP_NOT_AGENT", subject: `steps/${step}`, description: `a binding names step "${step}", whose kind is ${kind}, not ${agentKind}` });
      }
    }
  }
  return out;
}
