// The IPAs' SQL (src/ipas/ipa.repository.ts) straight over a real database:
// what an IPA is stored and read back as, which fields a patch or a state
// change sets, versions, pages, locks, and which deployed IPAs use a
// workflow or an agent, with another tenant's identical IPAs beside the
// caller's. The end-to-end suites reach these through IpaService, where a
// deploy's checks hide most of what each statement reads.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import type { Ipa, IpaPatch, NewIpa } from "../src/ipas/ipa.js";
import { IpaRepository } from "../src/ipas/ipa.repository.js";
import { AbortedError, NotFoundError } from "../src/shared/errors.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";
import { expectOldestFirstPages, expectVersionedWrites, failure, newTenant, probingRowLocks, twinCreator, twinOf } from "./support/tenant-twins.js";

const newIpa = (over: Partial<NewIpa> = {}): NewIpa => ({
  displayName: "Review",
  workflowId: randomUUID(),
  agentBindings: { reviewer: randomUUID() },
  ...over,
});

describe.each(databaseKinds)("IPA statements on %s", (kind) => {
  const suite = migratedDatabase(kind);

  const ipas = <T>(tenant: string, work: (i: IpaRepository) => Promise<T>): Promise<T> =>
    suite.db.transaction().execute((trx) => work(new IpaRepository(trx, tenant)));
  /** Creates `input` in `tenant` and the same in its twin tenant, which nothing done in `tenant` may touch. */
  const twinIn = twinCreator(ipas, (i, input: NewIpa) => i.create(input));
  const twin = (tenant: string, input: NewIpa = newIpa()) => twinIn(tenant, input);
  const otherNow = (tenant: string, ipa: Ipa) => ipas(twinOf(tenant), (i) => i.get(ipa.id));
  /** The agent ids stored for the IPA: what deployedUsing's agent query reads. */
  const agentIds = async (tenant: string, id: string) =>
    (await sql<{ agent_ids: string[] }>`select agent_ids from ipas where tenant_id = ${tenant} and id = ${id}`.execute(suite.db)).rows[0]?.agent_ids;

  it("creates a draft IPA with every field as given and no deployed revision, and gets it in its tenant only", async () => {
    const tenant = newTenant();
    const input = newIpa({ agentBindings: { a: randomUUID(), b: randomUUID() } });
    const { mine } = await twin(tenant, input);
    expect(mine).toMatchObject({ ...input, state: "draft", version: 1 });
    expect(mine.deployedRevision).toBeUndefined();
    expect(mine.createTime).toBeInstanceOf(Date);
    expect(mine.updateTime).toBeInstanceOf(Date);
    expect(Object.keys(mine).sort()).toEqual(["agentBindings", "createTime", "deployedRevision", "displayName", "id", "state", "updateTime", "version", "workflowId"]);
    expect(await ipas(tenant, (i) => i.get(mine.id))).toEqual(mine);
    expect(new Set(await agentIds(tenant, mine.id))).toEqual(new Set(Object.values(input.agentBindings)));
    const elsewhere = await failure(ipas(twinOf(tenant), (i) => i.get(mine.id)));
    expect(elsewhere).toBeInstanceOf(NotFoundError);
    expect(elsewhere).toMatchObject({ resource: "ipa", id: mine.id });
  });

  it("updates each field on its own, the bound agents' ids with the bindings, leaving the rest and the other tenant's IPA alone", async () => {
    const tenant = newTenant();
    const { mine, other } = await twin(tenant);
    const agent = randomUUID();
    const patches: IpaPatch[] = [{ displayName: "Renamed" }, { workflowId: randomUUID() }, { agentBindings: { x: agent, y: agent } }, { agentBindings: {} }, {}];
    let expected: Ipa = mine;
    for (const [i, patch] of patches.entries()) {
      const updated = await ipas(tenant, (r) => r.update(mine.id, patch, undefined));
      expected = { ...expected, ...patch, version: i + 2, updateTime: updated.updateTime };
      expect(updated).toEqual(expected);
      expect(await ipas(tenant, (r) => r.get(mine.id))).toEqual(expected);
      if (patch.agentBindings) expect(new Set(await agentIds(tenant, mine.id))).toEqual(new Set(Object.values(patch.agentBindings)));
    }
    expect(await otherNow(tenant, other)).toEqual(other);
  });

  it("moves the state, pinning a deployed revision when given and keeping it when not, at the expected version only", async () => {
    const tenant = newTenant();
    const { mine, other } = await twin(tenant);
    const deployed = await ipas(tenant, (i) => i.setState(mine.id, "deployed", 3, 1));
    expect(deployed).toMatchObject({ state: "deployed", deployedRevision: 3, version: 2, displayName: mine.displayName, workflowId: mine.workflowId });
    const retired = await ipas(tenant, (i) => i.setState(mine.id, "retired", undefined, undefined));
    expect(retired).toMatchObject({ state: "retired", deployedRevision: 3, version: 3 });
    expect(await failure(ipas(tenant, (i) => i.setState(mine.id, "draft", undefined, 2)))).toBeInstanceOf(AbortedError);
    expect(await failure(ipas(twinOf(tenant), (i) => i.setState(mine.id, "deployed", 1, undefined)))).toMatchObject({ resource: "ipa", id: mine.id });
    expect(await ipas(tenant, (i) => i.get(mine.id))).toEqual(retired);
    expect(await otherNow(tenant, other)).toEqual(other);
  });

  it("updates and deletes at the expected version only: ABORTED when stale, NOT_FOUND in another tenant", async () => {
    const tenant = newTenant();
    const { mine, other } = await twin(tenant);
    await expectVersionedWrites(ipas, tenant, mine, "ipa");
    expect(await otherNow(tenant, other)).toEqual(other);
  });

  it("lists the tenant's IPAs oldest first, the id breaking ties, in pages after a keyset position", async () => {
    const tenant = newTenant();
    const [a, b, c] = [(await twin(tenant)).mine, (await twin(tenant)).mine, (await twin(tenant)).mine];
    await expectOldestFirstPages(suite.db, "ipas", ipas, tenant, [a!, b!, c!]);
  });

  it("finds the tenant's deployed IPAs running a workflow or binding an agent, by id, and no draft or retired one", async () => {
    const tenant = newTenant();
    const [workflow, agent, otherAgent] = [randomUUID(), randomUUID(), randomUUID()];
    const deploy = async (input: NewIpa, state: "deployed" | "retired" | "draft" = "deployed") => {
      const { mine, other } = await twin(tenant, input);
      for (const [t, ipa] of [[tenant, mine], [twinOf(tenant), other]] as const) {
        if (state !== "draft") await ipas(t, (i) => i.setState(ipa.id, state, 1, undefined));
      }
      return mine;
    };
    const both = await deploy(newIpa({ displayName: "both", workflowId: workflow, agentBindings: { r: agent, s: otherAgent } }));
    const flowOnly = await deploy(newIpa({ displayName: "flow", workflowId: workflow, agentBindings: { r: otherAgent } }));
    const agentOnly = await deploy(newIpa({ displayName: "agent", agentBindings: { r: otherAgent, s: agent } }));
    await deploy(newIpa({ workflowId: workflow, agentBindings: { r: agent } }), "draft");
    await deploy(newIpa({ workflowId: workflow, agentBindings: { r: agent } }), "retired");
    const refs = (ipasOf: Ipa[]) => ipasOf.map((i) => ({ id: i.id, displayName: i.displayName })).sort((x, y) => (x.id < y.id ? -1 : 1));
    expect(await ipas(tenant, (i) => i.deployedUsing({ workflowId: workflow }))).toEqual(refs([both, flowOnly]));
    expect(await ipas(tenant, (i) => i.deployedUsing({ agentId: agent }))).toEqual(refs([both, agentOnly]));
    expect(await ipas(tenant, (i) => i.deployedUsing({ workflowId: randomUUID() }))).toEqual([]);
    expect(await ipas(`${tenant}-none`, (i) => i.deployedUsing({ agentId: agent }))).toEqual([]);
  });

  it.runIf(kind === "postgres")("holds the IPA's row as asked until the transaction ends (PostgreSQL only: row locks)", async () => {
    const tenant = newTenant();
    const { mine } = await twin(tenant);
    await probingRowLocks(suite.url!, "ipas", ipas, tenant, mine.id, async (whileHeld) => {
      expect(await whileHeld((i) => i.get(mine.id, "update"))).toEqual({ update: false, share: false });
      expect(await whileHeld((i) => i.get(mine.id, "share"))).toEqual({ update: false, share: true });
      expect(await whileHeld((i) => i.get(mine.id, "none"))).toEqual({ update: true, share: true });
      expect(await whileHeld((i) => i.get(mine.id))).toEqual({ update: true, share: true });
    });
  });
});
