import type { JsonObject } from "../shared/json.js";

/** An agent: a model with instructions and tools, as the domain sees it. */
export interface Agent extends NewAgent {
  readonly id: string;
  readonly version: number;
  readonly createTime: Date;
  readonly updateTime: Date;
}

/** Only enabled agents may be deployed; a deployed IPA keeps its agents enabled. */
export type AgentState = "enabled" | "disabled";

/** What a client decides when creating an agent. */
export interface NewAgent {
  readonly displayName: string;
  readonly model: string;
  readonly instructions: string;
  readonly tools: readonly string[];
  readonly config: JsonObject;
  readonly state: AgentState;
}

/** The fields an update may change; absent fields stay as they are. */
export type AgentPatch = Partial<NewAgent>;

/** The field-mask paths an update accepts, mapped to the domain field they change. */
export const updatableAgentFields = {
  display_name: "displayName",
  model: "model",
  instructions: "instructions",
  tools: "tools",
  config: "config",
  state: "state",
} as const satisfies Record<string, keyof NewAgent>;
