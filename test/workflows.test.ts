import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect, it } from "vitest";
import { type Workflow, WorkflowService, type Workflow_Step, Workflow_State } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { badFields, describeDomainRules, domainClients, failure, preconditions, readyIpa } from "./support/domain-fixtures.js";
import { describeResource } from "./support/resource-suite.js";

describeResource<typeof WorkflowService, Workflow>({
  name: "workflow",
  service: WorkflowService,
  writerKey: "acme-editor",
  deniedWriterKeys: ["acme-viewer", "acme-analyzer"],
  deniedReaderKeys: ["acme-analyzer", "acme-worker"],
  create: async (client, seed, requestId) =>
    (
      await client.createWorkflow({
        workflow: {
          displayName: seed,
          description: `Triage ${seed}`,
          steps: [
            { name: "fetch", kind: "http", config: { url: `https://example.com/${seed}`, retries: 3 } },
            { name: "review", kind: "agent", dependsOn: ["fetch"] },
          ],
        },
        requestId,
      })
    ).workflow!,
  get: async (client, id) => (await client.getWorkflow({ id })).workflow!,
  list: async (client, pageSize, pageToken) => {
    const res = await client.listWorkflows({ pageSize, pageToken });
    return { items: res.workflows, next: res.nextPageToken };
  },
  update: async (client, workflow, seed, etag, mask = ["display_name", "description"]) =>
    (
      await client.updateWorkflow({
        workflow: { id: workflow.id, displayName: seed, description: seed, etag: etag ?? "" },
        updateMask: create(FieldMaskSchema, { paths: mask }),
      })
    ).workflow!,
  isUpdated: (workflow, seed) => workflow.displayName === seed && workflow.description === seed,
  delete: async (client, id, etag) => {
    await client.deleteWorkflow({ id, etag: etag ?? "" });
  },
  createInvalid: (client) => client.createWorkflow({ workflow: { displayName: "x", steps: [{ name: "a", kind: "Not A Token" }] } }),
  invalidField: "workflow.steps[0].kind",
  id: (w) => w.id,
  etag: (w) => w.etag,
});

type StepInit = { name: string; kind: string; dependsOn?: string[] };

describeDomainRules("workflow rules", (c, server) => {

  const createWith = (steps: StepInit[]) => c.workflows.createWorkflow({ workflow: { displayName: "steps", steps } });
  const mask = (...paths: string[]) => create(FieldMaskSchema, { paths });

  it("refuses repeated step names, naming the repeated step", async () => {
    const err = await failure(createWith([{ name: "a", kind: "http" }, { name: "b", kind: "http" }, { name: "a", kind: "agent" }]), Code.InvalidArgument);
    expect(badFields(err)).toEqual(["workflow.steps[2].name"]);
  });

  it("refuses depends_on naming a later step, the step itself or no step, naming each offending step", async () => {
    const err = await failure(
      createWith([
        { name: "a", kind: "http", dependsOn: ["c"] },
        { name: "b", kind: "http", dependsOn: ["b"] },
        { name: "c", kind: "http", dependsOn: ["a", "ghost"] },
      ]),
      Code.InvalidArgument,
    );
    expect(badFields(err)).toEqual(["workflow.steps[0].depends_on", "workflow.steps[1].depends_on", "workflow.steps[2].depends_on"]);
    expect(err.message).toContain('"ghost"');
  });

  it("refuses a cycle on update too, and writes no revision", async () => {
    const wf = (await createWith([{ name: "a", kind: "http" }, { name: "b", kind: "http", dependsOn: ["a"] }])).workflow!;
    const cycle: StepInit[] = [
      { name: "a", kind: "http", dependsOn: ["b"] },
      { name: "b", kind: "http", dependsOn: ["a"] },
    ];
    const err = await failure(c.workflows.updateWorkflow({ workflow: { id: wf.id, steps: cycle }, updateMask: mask("steps") }), Code.InvalidArgument);
    expect(badFields(err)).toEqual(["workflow.steps[0].depends_on"]);
    expect((await c.workflows.getWorkflow({ id: wf.id })).workflow).toEqual(wf);
    expect((await c.workflows.listWorkflowRevisions({ id: wf.id })).revisions.map((r) => r.revision)).toEqual([1]);
  });

  it("accepts dependencies on earlier steps and keeps order, kinds, config and dependencies", async () => {
    const wf = (
      await c.workflows.createWorkflow({
        workflow: {
          displayName: "diamond",
          steps: [
            { name: "a", kind: "http", config: { url: "https://example.com", headers: { accept: "json" } } },
            { name: "b", kind: "agent", dependsOn: ["a"] },
            { name: "c", kind: "script", dependsOn: ["a"] },
            { name: "d", kind: "agent", dependsOn: ["b", "c"] },
          ],
        },
      })
    ).workflow!;
    expect(wf.revision).toBe(1);
    expect(wf.state).toBe(Workflow_State.DRAFT);
    const got = (await c.workflows.getWorkflow({ id: wf.id })).workflow!;
    expect(got.steps.map((s: Workflow_Step) => [s.name, s.kind, s.dependsOn])).toEqual([
      ["a", "http", []],
      ["b", "agent", ["a"]],
      ["c", "script", ["a"]],
      ["d", "agent", ["b", "c"]],
    ]);
    expect(got.steps[0]!.config).toEqual({ url: "https://example.com", headers: { accept: "json" } });
  });

  it("increments the revision on every update and keeps every earlier revision, paged newest first", async () => {
    const first = (await createWith([{ name: "a", kind: "http" }])).workflow!;
    let current = first;
    for (let i = 2; i <= 5; i++) {
      current = (
        await c.workflows.updateWorkflow({
          workflow: { id: first.id, displayName: `rev ${i}`, steps: [{ name: "a", kind: "http" }, { name: `s${i}`, kind: "agent", dependsOn: ["a"] }], etag: current.etag },
          updateMask: mask("display_name", "steps"),
        })
      ).workflow!;
      expect(current.revision).toBe(i);
    }
    const seen: Workflow[] = [];
    let token = "";
    do {
      const page = await c.workflows.listWorkflowRevisions({ id: first.id, pageSize: 2, pageToken: token });
      expect(page.revisions.length).toBeLessThanOrEqual(2);
      seen.push(...page.revisions);
      token = page.nextPageToken;
    } while (token !== "");
    expect(seen.map((r) => r.revision)).toEqual([5, 4, 3, 2, 1]);
    expect(seen[0]).toEqual(current);
    expect(seen[4]).toEqual(first);
    expect(seen[2]!.displayName).toBe("rev 3");
    expect(seen[2]!.steps.map((s) => s.name)).toEqual(["a", "s3"]);
  });

  it("refuses revision page tokens of another workflow, and NOT_FOUND for a missing workflow", async () => {
    const a = (await createWith([{ name: "a", kind: "http" }])).workflow!;
    const b = (await createWith([{ name: "a", kind: "http" }])).workflow!;
    for (const w of [a, b]) {
      await c.workflows.updateWorkflow({ workflow: { id: w.id, description: "x" }, updateMask: mask("description") });
    }
    const page = await c.workflows.listWorkflowRevisions({ id: a.id, pageSize: 1 });
    expect(page.nextPageToken).not.toBe("");
    await failure(c.workflows.listWorkflowRevisions({ id: b.id, pageSize: 1, pageToken: page.nextPageToken }), Code.InvalidArgument);
    await failure(c.workflows.listWorkflowRevisions({ id: "00000000-0000-4000-8000-000000000000" }), Code.NotFound);
    const other = domainClients(server().baseUrl, await server().token("globex-admin"));
    await failure(other.workflows.listWorkflowRevisions({ id: a.id }), Code.NotFound);
  });

  it("lets exactly one of many editors holding the same etag win, leaving no gap in the history", async () => {
    const wf = (await createWith([{ name: "a", kind: "http" }])).workflow!;
    const editors = Array.from({ length: 8 }, (_, i) =>
      c.workflows.updateWorkflow({ workflow: { id: wf.id, displayName: `editor ${i}`, etag: wf.etag }, updateMask: mask("display_name") }),
    );
    const results = await Promise.allSettled(editors);
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results) {
      if (r.status === "rejected") expect(Code[(r.reason as ConnectError).code]).toBe(Code[Code.Aborted]);
    }
    const revisions = (await c.workflows.listWorkflowRevisions({ id: wf.id })).revisions;
    expect(revisions.map((r) => r.revision)).toEqual([2, 1]);
    expect(revisions[0]!.displayName).toBe(won[0]!.value.workflow!.displayName);
  });

  it("numbers concurrent unconditional updates without gaps or duplicates", async () => {
    const wf = (await createWith([{ name: "a", kind: "http" }])).workflow!;
    const updates = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        c.workflows.updateWorkflow({ workflow: { id: wf.id, displayName: `writer ${i}` }, updateMask: mask("display_name") }),
      ),
    );
    expect(updates.map((u) => u.workflow!.revision).sort((x, y) => x - y)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    const revisions = (await c.workflows.listWorkflowRevisions({ id: wf.id })).revisions;
    expect(revisions.map((r) => r.revision)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1]);
    // Each revision records what its own update wrote.
    for (const u of updates) expect(revisions.find((r) => r.revision === u.workflow!.revision)!.displayName).toBe(u.workflow!.displayName);
  });

  it("refuses to archive, deactivate or delete a workflow a deployed IPA runs, naming the IPA, until it is undeployed", async () => {
    const { workflow, ipa } = await readyIpa(c, "workflow-in-use");
    await c.ipas.deployIpa({ id: ipa.id });
    for (const state of [Workflow_State.ARCHIVED, Workflow_State.DRAFT]) {
      const err = await failure(c.workflows.updateWorkflow({ workflow: { id: workflow.id, state }, updateMask: mask("state") }), Code.FailedPrecondition);
      expect(preconditions(err)).toEqual([`IPA_DEPLOYED ipas/${ipa.id}`]);
    }
    expect(preconditions(await failure(c.workflows.deleteWorkflow({ id: workflow.id }), Code.FailedPrecondition))).toEqual([`IPA_DEPLOYED ipas/${ipa.id}`]);
    // Nothing was written: same workflow, and no revision was added by the refused updates.
    expect((await c.workflows.getWorkflow({ id: workflow.id })).workflow).toEqual(workflow);
    expect((await c.workflows.listWorkflowRevisions({ id: workflow.id })).revisions).toHaveLength(1);

    await c.ipas.undeployIpa({ id: ipa.id });
    const archived = await c.workflows.updateWorkflow({ workflow: { id: workflow.id, state: Workflow_State.ARCHIVED }, updateMask: mask("state") });
    expect(archived.workflow!.state).toBe(Workflow_State.ARCHIVED);
    await c.workflows.deleteWorkflow({ id: workflow.id });
    await failure(c.workflows.getWorkflow({ id: workflow.id }), Code.NotFound);
    await failure(c.workflows.listWorkflowRevisions({ id: workflow.id }), Code.NotFound);
  });
});
