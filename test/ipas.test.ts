import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect, it } from "vitest";
import { Agent_State } from "../gen/anvil/agents/v1/agents_pb.js";
import { type Ipa, IpaService, Ipa_State } from "../gen/anvil/ipas/v1/ipas_pb.js";
import { Workflow_State } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { badFields, describeDomainRules, failure, preconditions, readyIpa } from "./support/domain-fixtures.js";
import { describeResource } from "./support/resource-suite.js";

// Draft IPAs may name workflows and agents that do not exist; deploy checks them.
const someWorkflow = "5b0d7c1e-8f4a-4c55-9a4e-0c1d2e3f4a5b";
const someAgent = "0e9a8b7c-6d5e-4f3a-8b2c-1d0e9f8a7b6c";

describeResource<typeof IpaService, Ipa>({
  name: "ipa",
  service: IpaService,
  writerKey: "acme-editor",
  deniedWriterKeys: ["acme-viewer", "acme-analyzer"],
  deniedReaderKeys: ["acme-analyzer", "acme-worker"],
  create: async (client, seed, requestId) =>
    (await client.createIpa({ ipa: { displayName: seed, workflowId: someWorkflow, agentBindings: { review: someAgent } }, requestId })).ipa!,
  get: async (client, id) => (await client.getIpa({ id })).ipa!,
  list: async (client, pageSize, pageToken) => {
    const res = await client.listIpas({ pageSize, pageToken });
    return { items: res.ipas, next: res.nextPageToken };
  },
  update: async (client, ipa, seed, etag, mask = ["display_name"]) =>
    (
      await client.updateIpa({
        ipa: { id: ipa.id, displayName: seed, workflowId: someWorkflow, etag: etag ?? "" },
        updateMask: create(FieldMaskSchema, { paths: mask }),
      })
    ).ipa!,
  isUpdated: (ipa, seed) => ipa.displayName === seed,
  delete: async (client, id, etag) => {
    await client.deleteIpa({ id, etag: etag ?? "" });
  },
  createInvalid: (client) => client.createIpa({ ipa: { displayName: "x", workflowId: "not-a-uuid" } }),
  invalidField: "ipa.workflow_id",
  id: (i) => i.id,
  etag: (i) => i.etag,
});

describeDomainRules("IPA rules", (c) => {

  const mask = (...paths: string[]) => create(FieldMaskSchema, { paths });

  it("deploys a ready IPA, pinning the workflow's revision; later revisions do not move the pin until redeploy", async () => {
    const { workflow, ipa } = await readyIpa(c, "pin");
    expect(ipa.state).toBe(Ipa_State.DRAFT);
    expect(ipa.deployedRevision).toBe(0);
    const edited = (
      await c.workflows.updateWorkflow({ workflow: { id: workflow.id, description: "v2", etag: workflow.etag }, updateMask: mask("description") })
    ).workflow!;
    const deployed = (await c.ipas.deployIpa({ id: ipa.id, etag: ipa.etag })).ipa!;
    expect(deployed.state).toBe(Ipa_State.DEPLOYED);
    expect(deployed.deployedRevision).toBe(edited.revision);
    expect(deployed.etag).not.toBe(ipa.etag);
    await c.workflows.updateWorkflow({ workflow: { id: workflow.id, description: "v3" }, updateMask: mask("description") });
    expect((await c.ipas.getIpa({ id: ipa.id })).ipa!.deployedRevision).toBe(2);
    expect((await c.ipas.deployIpa({ id: ipa.id })).ipa!.deployedRevision).toBe(3);
    // A stale etag deploys nothing.
    await failure(c.ipas.deployIpa({ id: ipa.id, etag: ipa.etag }), Code.Aborted);
  });

  it("reports every problem that blocks a deploy, one violation each, and deploys nothing", async () => {
    const workflow = (
      await c.workflows.createWorkflow({
        workflow: {
          displayName: "draft",
          steps: [
            { name: "fetch", kind: "http" },
            { name: "review", kind: "agent", dependsOn: ["fetch"] },
            { name: "summarize", kind: "agent", dependsOn: ["review"] },
          ],
        },
      })
    ).workflow!;
    const disabled = (await c.agents.createAgent({ agent: { displayName: "off", model: "m", state: Agent_State.DISABLED } })).agent!;
    const ipa = (
      await c.ipas.createIpa({
        ipa: { displayName: "broken", workflowId: workflow.id, agentBindings: { review: disabled.id, fetch: someAgent, ghost: disabled.id } },
      })
    ).ipa!;
    const err = await failure(c.ipas.deployIpa({ id: ipa.id }), Code.FailedPrecondition);
    expect(preconditions(err)).toEqual(
      [
        `WORKFLOW_NOT_ACTIVE workflows/${workflow.id}`,
        `AGENT_DISABLED agents/${disabled.id}`,
        `AGENT_NOT_FOUND agents/${someAgent}`,
        "STEP_UNBOUND steps/summarize",
        "STEP_NOT_AGENT steps/fetch",
        "STEP_NOT_FOUND steps/ghost",
      ].sort(),
    );
    expect((await c.ipas.getIpa({ id: ipa.id })).ipa).toEqual(ipa);

    const orphan = (await c.ipas.createIpa({ ipa: { displayName: "orphan", workflowId: someWorkflow } })).ipa!;
    expect(preconditions(await failure(c.ipas.deployIpa({ id: orphan.id }), Code.FailedPrecondition))).toEqual([
      `WORKFLOW_NOT_FOUND workflows/${someWorkflow}`,
    ]);
    await failure(c.ipas.deployIpa({ id: "00000000-0000-4000-8000-000000000000" }), Code.NotFound);
  });

  it("refuses malformed bindings, naming the entry", async () => {
    const err = await failure(
      c.ipas.createIpa({ ipa: { displayName: "x", workflowId: someWorkflow, agentBindings: { review: "agent-7" } } }),
      Code.InvalidArgument,
    );
    expect(badFields(err)).toEqual(['ipa.agent_bindings["review"]']);
  });

  it("keeps a deployed IPA fixed: no rebinding or delete until undeployed; undeploy retires it", async () => {
    const { ipa } = await readyIpa(c, "fixed");
    await c.ipas.deployIpa({ id: ipa.id });
    for (const paths of [["agent_bindings"], ["workflow_id"]]) {
      const err = await failure(
        c.ipas.updateIpa({ ipa: { id: ipa.id, workflowId: someWorkflow, agentBindings: { review: someAgent } }, updateMask: mask(...paths) }),
        Code.FailedPrecondition,
      );
      expect(preconditions(err)).toEqual([`IPA_DEPLOYED ipas/${ipa.id}`]);
    }
    await failure(c.ipas.deleteIpa({ id: ipa.id }), Code.FailedPrecondition);
    const renamed = (await c.ipas.updateIpa({ ipa: { id: ipa.id, displayName: "renamed", workflowId: someWorkflow }, updateMask: mask("display_name") })).ipa!;
    expect(renamed.state).toBe(Ipa_State.DEPLOYED);
    expect(renamed.agentBindings).toEqual(ipa.agentBindings);

    const retired = (await c.ipas.undeployIpa({ id: ipa.id, etag: renamed.etag })).ipa!;
    expect(retired.state).toBe(Ipa_State.RETIRED);
    expect(preconditions(await failure(c.ipas.undeployIpa({ id: ipa.id }), Code.FailedPrecondition))).toEqual([`IPA_NOT_DEPLOYED ipas/${ipa.id}`]);
    await c.ipas.deleteIpa({ id: ipa.id });
  });

  // The rule that matters under concurrency: whatever interleaving the
  // database picks, a deployed IPA never points at a missing or unusable
  // workflow or agent, and exactly one side of each race wins.
  const races = {
    "deleting the agent": (f: Awaited<ReturnType<typeof readyIpa>>) => c.agents.deleteAgent({ id: f.agent.id }),
    "disabling the agent": (f: Awaited<ReturnType<typeof readyIpa>>) =>
      c.agents.updateAgent({ agent: { id: f.agent.id, state: Agent_State.DISABLED }, updateMask: mask("state") }),
    "deleting the workflow": (f: Awaited<ReturnType<typeof readyIpa>>) => c.workflows.deleteWorkflow({ id: f.workflow.id }),
    "archiving the workflow": (f: Awaited<ReturnType<typeof readyIpa>>) =>
      c.workflows.updateWorkflow({ workflow: { id: f.workflow.id, state: Workflow_State.ARCHIVED }, updateMask: mask("state") }),
  };

  it.each(Object.entries(races))("never leaves a deployed IPA behind when deploy races %s", async (_, rival) => {
    const fixtures = await Promise.all(Array.from({ length: 12 }, (_, i) => readyIpa(c, `race-${i}`)));
    const outcomes = await Promise.all(
      fixtures.map(async (f) => {
        const [deploy, other] = await Promise.allSettled([c.ipas.deployIpa({ id: f.ipa.id }), rival(f)]);
        return { f, deploy, other };
      }),
    );
    for (const { f, deploy, other } of outcomes) {
      // Exactly one side wins; the loser is refused by the rule, not by a crash or a deadlock.
      expect([deploy.status, other.status].filter((s) => s === "fulfilled")).toHaveLength(1);
      for (const r of [deploy, other]) {
        if (r.status === "rejected") expect(Code[(r.reason as ConnectError).code], String(r.reason)).toBe(Code[Code.FailedPrecondition]);
      }
      const ipa = (await c.ipas.getIpa({ id: f.ipa.id })).ipa!;
      if (ipa.state === Ipa_State.DEPLOYED) {
        const agent = (await c.agents.getAgent({ id: f.agent.id })).agent!;
        expect(agent.state).toBe(Agent_State.ENABLED);
        expect((await c.workflows.getWorkflow({ id: f.workflow.id })).workflow!.state).toBe(Workflow_State.ACTIVE);
      }
      expect(ipa.state === Ipa_State.DEPLOYED).toBe(deploy.status === "fulfilled");
    }
  });
});
