// The workflows' SQL (src/workflows/workflow.repository.ts) straight over a
// real database: what a workflow and its steps are stored and read back as,
// the revision every write records, versions, pages and the shared read a
// deploy or a run holds, with another tenant's identical workflows beside the
// caller's. The end-to-end suites reach these through WorkflowService.
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { NewWorkflow, Workflow, WorkflowPatch, WorkflowStep } from "../src/workflows/workflow.js";
import { WorkflowRepository } from "../src/workflows/workflow.repository.js";
import { AbortedError, NotFoundError } from "../src/shared/errors.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";
import { expectOldestFirstPages, failure, newTenant, probingRowLocks, twinCreator, twinOf } from "./support/tenant-twins.js";

const steps: WorkflowStep[] = [
  { name: "fetch", kind: "http", config: { url: "https://example.com", retries: 2 }, dependsOn: [] },
  { name: "charge", kind: "payment", config: { amount: 5 }, dependsOn: ["fetch"], compensation: { kind: "refund", config: { full: true }, maxAttempts: 4 } },
];
const newWorkflow = (over: Partial<NewWorkflow> = {}): NewWorkflow => ({ displayName: "Flow", description: "Does things.", steps, state: "draft", ...over });

describe.each(databaseKinds)("workflow statements on %s", (kind) => {
  const suite = migratedDatabase(kind);

  const workflows = <T>(tenant: string, work: (w: WorkflowRepository) => Promise<T>): Promise<T> =>
    suite.db.transaction().execute((trx) => work(new WorkflowRepository(trx, tenant)));
  /** Creates `input` in `tenant` and the same in its twin tenant, which nothing done in `tenant` may touch. */
  const twinIn = twinCreator(workflows, (w, input: NewWorkflow) => w.create(input));
  const twin = (tenant: string, input: NewWorkflow = newWorkflow()) => twinIn(tenant, input);
  /** The other tenant's workflow and its revisions as stored now: compared before and after, they show they were left alone. */
  const otherNow = (tenant: string, workflow: Workflow) =>
    workflows(twinOf(tenant), async (w) => ({ workflow: await w.get(workflow.id), revisions: await w.revisions(workflow.id, 100, undefined) }));

  it("creates a workflow with every field and step as given, at revision 1, recorded as its first revision, and gets it in its tenant only", async () => {
    const tenant = newTenant();
    const { mine } = await twin(tenant, newWorkflow({ state: "active" }));
    expect(mine).toMatchObject({ displayName: "Flow", description: "Does things.", steps, state: "active", revision: 1 });
    // A step without a compensation has none, not an undefined one.
    expect(Object.keys(mine.steps[0]!).sort()).toEqual(["config", "dependsOn", "kind", "name"]);
    expect(mine.createTime).toBeInstanceOf(Date);
    expect(mine.updateTime).toBeInstanceOf(Date);
    expect(Object.keys(mine).sort()).toEqual(["createTime", "description", "displayName", "id", "revision", "state", "steps", "updateTime"]);
    expect(await workflows(tenant, (w) => w.get(mine.id))).toEqual(mine);
    expect(await workflows(tenant, (w) => w.revisions(mine.id, 10, undefined))).toEqual([mine]);
    const elsewhere = await failure(workflows(twinOf(tenant), (w) => w.get(mine.id)));
    expect(elsewhere).toBeInstanceOf(NotFoundError);
    expect(elsewhere).toMatchObject({ resource: "workflow", id: mine.id });
    expect(await workflows(twinOf(tenant), (w) => w.revisions(mine.id, 10, undefined))).toEqual([]);
  });

  it("updates each field on its own as a new revision, recording each revision as it was, leaving the other tenant's workflow alone", async () => {
    const tenant = newTenant();
    const { mine, other } = await twin(tenant);
    const before = await otherNow(tenant, other);
    const patches: WorkflowPatch[] = [
      { displayName: "Renamed" },
      { description: "Does more." },
      { steps: [{ name: "only", kind: "k", config: {}, dependsOn: [] }] },
      { state: "archived" },
      {},
    ];
    const written: Workflow[] = [mine];
    for (const [i, patch] of patches.entries()) {
      const updated = await workflows(tenant, (w) => w.update(mine.id, patch, undefined));
      const expected = { ...written.at(-1)!, ...patch, revision: i + 2, updateTime: updated.updateTime };
      expect(updated).toEqual(expected);
      expect(await workflows(tenant, (w) => w.get(mine.id))).toEqual(expected);
      written.push(expected);
    }
    expect(await workflows(tenant, (w) => w.revisions(mine.id, 100, undefined))).toEqual([...written].reverse());
    expect(await otherNow(tenant, other)).toEqual(before);
  });

  it("reads revisions newest first, in pages below a revision", async () => {
    const tenant = newTenant();
    const { mine } = await twin(tenant);
    for (const name of ["r2", "r3", "r4"]) await workflows(tenant, (w) => w.update(mine.id, { displayName: name }, undefined));
    const revisions = async (limit: number, after?: readonly unknown[]) =>
      (await workflows(tenant, (w) => w.revisions(mine.id, limit, after))).map((r) => [r.revision, r.displayName]);
    expect(await revisions(2)).toEqual([[4, "r4"], [3, "r3"]]);
    expect(await revisions(2, [3])).toEqual([[2, "r2"], [1, "Flow"]]);
    expect(await revisions(10, [1])).toEqual([]);
    const [oldest] = await workflows(tenant, (w) => w.revisions(mine.id, 1, [2]));
    expect(oldest).toEqual(mine);
  });

  it("updates and deletes at the expected revision only: ABORTED when stale, NOT_FOUND in another tenant; a delete takes the revisions with it", async () => {
    const tenant = newTenant();
    const { mine, other } = await twin(tenant);
    const before = await otherNow(tenant, other);
    expect(await workflows(tenant, (w) => w.update(mine.id, { displayName: "v2" }, 1))).toMatchObject({ displayName: "v2", revision: 2 });
    expect(await failure(workflows(tenant, (w) => w.update(mine.id, { displayName: "stale" }, 1)))).toBeInstanceOf(AbortedError);
    expect(await failure(workflows(tenant, (w) => w.delete(mine.id, 1)))).toBeInstanceOf(AbortedError);
    expect(await failure(workflows(twinOf(tenant), (w) => w.update(mine.id, { displayName: "theirs" }, undefined)))).toMatchObject({ resource: "workflow", id: mine.id });
    expect(await failure(workflows(twinOf(tenant), (w) => w.delete(mine.id, undefined)))).toMatchObject({ resource: "workflow", id: mine.id });
    expect((await workflows(tenant, (w) => w.revisions(mine.id, 10, undefined))).map((r) => r.revision)).toEqual([2, 1]);
    await workflows(tenant, (w) => w.delete(mine.id, 2));
    expect(await failure(workflows(tenant, (w) => w.get(mine.id)))).toBeInstanceOf(NotFoundError);
    expect(await workflows(tenant, (w) => w.revisions(mine.id, 10, undefined))).toEqual([]);
    expect(await otherNow(tenant, other)).toEqual(before);
  });

  it("lists the tenant's workflows oldest first, the id breaking ties, in pages after a keyset position", async () => {
    const tenant = newTenant();
    const [a, b, c] = [(await twin(tenant)).mine, (await twin(tenant)).mine, (await twin(tenant)).mine];
    await expectOldestFirstPages(suite.db, "workflows", workflows, tenant, [a!, b!, c!]);
  });

  it("finds a workflow of the tenant, or none for an id it does not have", async () => {
    const tenant = newTenant();
    const { mine } = await twin(tenant);
    expect(await workflows(tenant, (w) => w.findShared(mine.id))).toEqual(mine);
    expect(await workflows(twinOf(tenant), (w) => w.findShared(mine.id))).toBeUndefined();
    expect(await workflows(tenant, (w) => w.findShared(randomUUID()))).toBeUndefined();
  });

  it.runIf(kind === "postgres")("holds the workflow it reads shared until the transaction ends: no change, other sharers welcome (PostgreSQL only: row locks)", async () => {
    const tenant = newTenant();
    const { mine } = await twin(tenant);
    await probingRowLocks(suite.url!, "workflows", workflows, tenant, mine.id, async (whileHeld) => {
      expect(await whileHeld((w) => w.findShared(mine.id))).toEqual({ update: false, share: true });
      expect(await whileHeld((w) => w.get(mine.id, "share"))).toEqual({ update: false, share: true });
      expect(await whileHeld((w) => w.get(mine.id))).toEqual({ update: true, share: true });
    });
  });
});
