import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { expect, it } from "vitest";
import { type Agent, AgentService, Agent_State } from "../gen/anvil/agents/v1/agents_pb.js";
import { describeDomainRules, failure, preconditions, readyIpa } from "./support/domain-fixtures.js";
import { describeResource } from "./support/resource-suite.js";

describeResource<typeof AgentService, Agent>({
  name: "agent",
  service: AgentService,
  writerKey: "acme-editor",
  deniedWriterKeys: ["acme-viewer", "acme-analyzer"],
  deniedReaderKeys: ["acme-analyzer", "acme-worker"],
  create: async (client, seed, requestId) =>
    (
      await client.createAgent({
        agent: { displayName: seed, model: "claude-sonnet-4", instructions: `Review ${seed}`, tools: ["search", "read_file"], config: { temperature: 0.2, seed } },
        requestId,
      })
    ).agent!,
  get: async (client, id) => (await client.getAgent({ id })).agent!,
  list: async (client, pageSize, pageToken) => {
    const res = await client.listAgents({ pageSize, pageToken });
    return { items: res.agents, next: res.nextPageToken };
  },
  update: async (client, agent, seed, etag, mask = ["display_name", "config"]) =>
    (
      await client.updateAgent({
        agent: { id: agent.id, displayName: seed, config: { seed, nested: { list: [1, "two", null, true] } }, etag: etag ?? "" },
        updateMask: create(FieldMaskSchema, { paths: mask }),
      })
    ).agent!,
  isUpdated: (agent, seed) => agent.displayName === seed && agent.config?.seed === seed,
  delete: async (client, id, etag) => {
    await client.deleteAgent({ id, etag: etag ?? "" });
  },
  createInvalid: (client) => client.createAgent({ agent: { displayName: "x", model: "m", tools: ["Not A Token"] } }),
  invalidField: "agent.tools[0]",
  id: (a) => a.id,
  etag: (a) => a.etag,
});

describeDomainRules("agent rules", (c) => {

  it("refuses to disable or delete an agent a deployed IPA binds, naming the IPA, until it is undeployed", async () => {
    const { agent, ipa } = await readyIpa(c, "agent-in-use");
    await c.ipas.deployIpa({ id: ipa.id });
    const disable = c.agents.updateAgent({
      agent: { id: agent.id, state: Agent_State.DISABLED },
      updateMask: create(FieldMaskSchema, { paths: ["state"] }),
    });
    expect(preconditions(await failure(disable, Code.FailedPrecondition))).toEqual([`IPA_DEPLOYED ipas/${ipa.id}`]);
    expect(preconditions(await failure(c.agents.deleteAgent({ id: agent.id }), Code.FailedPrecondition))).toEqual([`IPA_DEPLOYED ipas/${ipa.id}`]);
    // Nothing was written: the agent is still enabled, at the same etag.
    expect((await c.agents.getAgent({ id: agent.id })).agent).toEqual(agent);
    // Other changes to a bound agent stay allowed.
    await c.agents.updateAgent({ agent: { id: agent.id, model: "claude-opus-4" }, updateMask: create(FieldMaskSchema, { paths: ["model"] }) });

    await c.ipas.undeployIpa({ id: ipa.id });
    const disabled = await c.agents.updateAgent({
      agent: { id: agent.id, state: Agent_State.DISABLED },
      updateMask: create(FieldMaskSchema, { paths: ["state"] }),
    });
    expect(disabled.agent!.state).toBe(Agent_State.DISABLED);
    await c.agents.deleteAgent({ id: agent.id });
    await failure(c.agents.getAgent({ id: agent.id }), Code.NotFound);
  });

  it("refuses an update that sets the state to unspecified", async () => {
    const agent = (await c.agents.createAgent({ agent: { displayName: "s", model: "m" } })).agent!;
    const err = await failure(
      c.agents.updateAgent({ agent: { id: agent.id, state: Agent_State.UNSPECIFIED }, updateMask: create(FieldMaskSchema, { paths: ["state"] }) }),
      Code.InvalidArgument,
    );
    expect(err.message).toContain("agent.state");
  });
});
