import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { AgentService, type Agent } from "../../gen/anvil/agents/v1/agents_pb.js";
import { IpaService, type Ipa } from "../../gen/anvil/ipas/v1/ipas_pb.js";
import { BadRequestSchema, PreconditionFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { type Workflow, WorkflowService, Workflow_State } from "../../gen/anvil/workflows/v1/workflows_pb.js";
import { clientFor, type Protocol } from "./clients.js";
import { databaseKinds } from "./databases.js";
import { startServer, type TestServer } from "./server.js";

/** Clients of the three services that IPAs tie together, for one caller. */
export interface DomainClients {
  readonly workflows: Client<typeof WorkflowService>;
  readonly agents: Client<typeof AgentService>;
  readonly ipas: Client<typeof IpaService>;
}

export function domainClients(baseUrl: string, token: string, protocol: Protocol = "connect-json"): DomainClients {
  return {
    workflows: clientFor(WorkflowService, protocol, baseUrl, token),
    agents: clientFor(AgentService, protocol, baseUrl, token),
    ipas: clientFor(IpaService, protocol, baseUrl, token),
  };
}

/**
 * A describe block run once per database kind against its own server, with
 * editor clients of the three services (usable inside tests and hooks, once
 * the server is up) and the server itself for other callers' tokens.
 */
export function describeDomainRules(title: string, body: (c: DomainClients, server: () => TestServer) => void): void {
  describe.each(databaseKinds)(`${title} on %s`, (kind) => {
    let server: TestServer | undefined;
    let clients: DomainClients | undefined;
    beforeAll(async () => {
      server = await startServer(kind);
      clients = domainClients(server.baseUrl, await server.token("acme-editor"));
    });
    afterAll(() => server?.close());
    const ready = () => clients ?? expect.fail("server not started");
    const c: DomainClients = {
      get workflows() {
        return ready().workflows;
      },
      get agents() {
        return ready().agents;
      },
      get ipas() {
        return ready().ipas;
      },
    };
    body(c, () => server ?? expect.fail("server not started"));
  });
}

/** An active workflow `fetch (http) → review (agent)`, an enabled agent, and a draft IPA binding them. */
export async function readyIpa(c: DomainClients, name = "fixture"): Promise<{ workflow: Workflow; agent: Agent; ipa: Ipa }> {
  const workflow = (
    await c.workflows.createWorkflow({
      workflow: {
        displayName: name,
        state: Workflow_State.ACTIVE,
        steps: [
          { name: "fetch", kind: "http" },
          { name: "review", kind: "agent", dependsOn: ["fetch"] },
        ],
      },
    })
  ).workflow!;
  const agent = (await c.agents.createAgent({ agent: { displayName: name, model: "claude-sonnet-4" } })).agent!;
  const ipa = (await c.ipas.createIpa({ ipa: { displayName: name, workflowId: workflow.id, agentBindings: { review: agent.id } } })).ipa!;
  return { workflow, agent, ipa };
}

/** The error a call failed with; fails the test if it succeeded or failed with another code. */
export async function failure(promise: Promise<unknown>, code: Code): Promise<ConnectError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${Code[code]}`).toBeInstanceOf(ConnectError);
  expect(Code[(err as ConnectError).code], (err as Error).message).toBe(Code[code]);
  return err as ConnectError;
}

/** The fields a BadRequest detail names. */
export function badFields(err: ConnectError): string[] {
  return err.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => v.field));
}

/** The `type subject` of every precondition violation, sorted. */
export function preconditions(err: ConnectError): string[] {
  return err
    .findDetails(PreconditionFailureSchema)
    .flatMap((d) => d.violations.map((v) => `${v.type} ${v.subject}`))
    .sort();
}
