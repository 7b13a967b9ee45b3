// The agents' SQL (src/agents/agent.repository.ts) straight over a real
// database: what an agent is stored and read back as, which fields a patch
// changes, versions and pages, and the shared read a deploy holds, with
// another tenant's identical agents beside the caller's. The end-to-end
// suites reach these through AgentService and IpaService.
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { Agent, AgentPatch, NewAgent } from "../src/agents/agent.js";
import { AgentRepository } from "../src/agents/agent.repository.js";
import { NotFoundError } from "../src/shared/errors.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";
import { expectOldestFirstPages, expectVersionedWrites, failure, newTenant, probingRowLocks, twinCreator, twinOf } from "./support/tenant-twins.js";

const newAgent = (over: Partial<NewAgent> = {}): NewAgent => ({
  displayName: "Triage",
  model: "model-a",
  instructions: "Be brief.",
  tools: ["search", "read"],
  config: { temperature: 0.2, nested: { on: true } },
  state: "enabled",
  ...over,
});

describe.each(databaseKinds)("agent statements on %s", (kind) => {
  const suite = migratedDatabase(kind);

  const agents = <T>(tenant: string, work: (a: AgentRepository) => Promise<T>): Promise<T> =>
    suite.db.transaction().execute((trx) => work(new AgentRepository(trx, tenant)));
  /** Creates `input` in `tenant` and the same in its twin tenant, which nothing done in `tenant` may touch. */
  const twinIn = twinCreator(agents, (a, input: NewAgent) => a.create(input));
  const twin = (tenant: string, input: NewAgent = newAgent()) => twinIn(tenant, input);
  const otherNow = (tenant: string, agent: Agent) => agents(twinOf(tenant), (a) => a.get(agent.id));

  it("creates an agent with every field as given, at version 1, and gets it in its tenant only", async () => {
    const tenant = newTenant();
    const { mine } = await twin(tenant, newAgent({ state: "disabled" }));
    expect(mine).toMatchObject({ ...newAgent({ state: "disabled" }), version: 1 });
    expect(mine.createTime).toBeInstanceOf(Date);
    expect(mine.updateTime).toBeInstanceOf(Date);
    expect(Object.keys(mine).sort()).toEqual(["config", "createTime", "displayName", "id", "instructions", "model", "state", "tools", "updateTime", "version"]);
    expect(await agents(tenant, (a) => a.get(mine.id))).toEqual(mine);
    const elsewhere = await failure(agents(twinOf(tenant), (a) => a.get(mine.id)));
    expect(elsewhere).toBeInstanceOf(NotFoundError);
    expect(elsewhere).toMatchObject({ resource: "agent", id: mine.id });
  });

  it("updates each field on its own, leaving the others and the other tenant's agent as they were, bumping the version", async () => {
    const tenant = newTenant();
    const { mine, other } = await twin(tenant);
    const patches: AgentPatch[] = [
      { displayName: "Renamed" },
      { model: "model-b" },
      { instructions: "Be thorough." },
      { tools: ["write"] },
      { tools: [] },
      { config: { temperature: 1 } },
      { config: {} },
      { state: "disabled" },
      {},
    ];
    let expected: Agent = mine;
    for (const [i, patch] of patches.entries()) {
      const updated = await agents(tenant, (a) => a.update(mine.id, patch, undefined));
      expected = { ...expected, ...patch, version: i + 2, updateTime: updated.updateTime };
      expect(updated).toEqual(expected);
      expect(await agents(tenant, (a) => a.get(mine.id))).toEqual(expected);
    }
    expect(await otherNow(tenant, other)).toEqual(other);
  });

  it("updates and deletes at the expected version only: ABORTED when stale, NOT_FOUND in another tenant", async () => {
    const tenant = newTenant();
    const { mine, other } = await twin(tenant);
    await expectVersionedWrites(agents, tenant, mine, "agent");
    expect(await otherNow(tenant, other)).toEqual(other);
  });

  it("lists the tenant's agents oldest first, the id breaking ties, in pages after a keyset position", async () => {
    const tenant = newTenant();
    const [a, b, c] = [(await twin(tenant)).mine, (await twin(tenant)).mine, (await twin(tenant)).mine];
    await expectOldestFirstPages(suite.db, "agents", agents, tenant, [a!, b!, c!]);
  });

  it("reads the agents among some ids that exist in the tenant, keyed by id", async () => {
    const tenant = newTenant();
    const one = (await twin(tenant, newAgent({ displayName: "one" }))).mine;
    const two = (await twin(tenant, newAgent({ displayName: "two" }))).mine;
    const theirs = await agents(twinOf(tenant), (a) => a.create(newAgent({ displayName: "theirs" })));
    const shared = await agents(tenant, (a) => a.getShared([two.id, randomUUID(), one.id, theirs.id]));
    expect([...shared.keys()].sort()).toEqual([one.id, two.id].sort());
    expect(shared.get(one.id)).toEqual(one);
    expect(shared.get(two.id)).toEqual(two);
    expect((await agents(tenant, (a) => a.getShared([]))).size).toBe(0);
  });

  it.runIf(kind === "postgres")("holds the agents it reads shared until the transaction ends: no change, other sharers welcome (PostgreSQL only: row locks)", async () => {
    const tenant = newTenant();
    const { mine } = await twin(tenant);
    await probingRowLocks(suite.url!, "agents", agents, tenant, mine.id, async (whileHeld) => {
      expect(await whileHeld((a) => a.getShared([mine.id]))).toEqual({ update: false, share: true });
      expect(await whileHeld((a) => a.get(mine.id))).toEqual({ update: true, share: true });
    });
  });
});
