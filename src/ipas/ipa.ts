import { FailedPreconditionError, type FieldViolation, InvalidArgumentError } from "../shared/errors.js";

/** An IPA: a workflow bound to the agents that carry out its `agent` steps. */
export interface Ipa extends NewIpa {
  readonly id: string;
  readonly state: IpaState;
  /** The workflow revision pinned by the last deploy; undefined if never deployed. */
  readonly deployedRevision: number | undefined;
  readonly version: number;
  readonly createTime: Date;
  readonly updateTime: Date;
}

export type IpaState = "draft" | "deployed" | "retired";

/** What a client decides when creating an IPA; it starts as a draft. */
export interface NewIpa {
  readonly displayName: string;
  readonly workflowId: string;
  /** Step name → agent id. */
  readonly agentBindings: Readonly<Record<string, string>>;
}

/** The fields an update may change; absent fields stay as they are. */
export type IpaPatch = Partial<NewIpa>;

/** The field-mask paths an update accepts, mapped to the domain field they change. */
export const updatableIpaFields = {
  display_name: "displayName",
  workflow_id: "workflowId",
  agent_bindings: "agentBindings",
} as const satisfies Record<string, keyof NewIpa>;

/** A deployed IPA as the in-use checks report it. */
export interface IpaRef {
  readonly id: string;
  readonly displayName: string;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Bindings must name a step (1–63 characters, as step names are) and an
 * agent by UUID. The proto cannot declare rules on map values, so they are
 * checked here; `path` is where the map sits in the request.
 *
 * @throws InvalidArgumentError naming each bad entry.
 */
export function checkBindings(bindings: Readonly<Record<string, string>>, path: string): void {
  const violations: FieldViolation[] = [];
  for (const [step, agent] of Object.entries(bindings)) {
    const field = `${path}[${JSON.stringify(step)}]`;
    if (step.length === 0 || [...step].length > 63) violations.push({ field, description: "step name must have 1 to 63 characters" });
    if (!uuid.test(agent)) violations.push({ field, description: "must be an agent id (a UUID)" });
  }
  if (violations.length > 0) {
    throw new InvalidArgumentError(`invalid ${path}: ${violations.map((v) => `${v.field} ${v.description}`).join("; ")}`, violations);
  }
}

/**
 * While an IPA is deployed, what it runs is fixed: its workflow and bindings
 * only change after UndeployIpa, and it cannot be deleted. Otherwise a
 * deployed IPA could come to point at an agent nobody checked.
 *
 * @throws FailedPreconditionError when `ipa` is deployed and `change` would touch it.
 */
export function checkChangeable(ipa: Ipa, change: "delete" | IpaPatch): void {
  if (ipa.state !== "deployed") return;
  if (change !== "delete" && change.workflowId === undefined && change.agentBindings === undefined) return;
  const what = change === "delete" ? "deleted" : "rebound to another workflow or other agents";
  throw new FailedPreconditionError(`IPA ${ipa.id} is deployed and cannot be ${what}; undeploy it first`, [
    { type: "IPA_DEPLOYED", subject: `ipas/${ipa.id}`, description: `IPA "${ipa.displayName}" is deployed; undeploy it first` },
  ]);
}

/**
 * Refuses to delete, archive or disable a workflow or agent that deployed
 * IPAs use, naming each of them. `subject` is what was about to change,
 * e.g. `agents/<id>`.
 *
 * @throws FailedPreconditionError when `users` is not empty.
 */
export function refuseWhileDeployed(subject: string, change: string, users: readonly IpaRef[]): void {
  if (users.length === 0) return;
  throw new FailedPreconditionError(
    `${subject} cannot be ${change}: deployed IPAs use it (${users.map((u) => u.id).join(", ")}); undeploy them first`,
    users.map((u) => ({
      type: "IPA_DEPLOYED",
      subject: `ipas/${u.id}`,
      description: `IPA "${u.displayName}" is deployed and uses ${subject}`,
    })),
  );
}
