import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FindingService, Finding_Severity } from "../gen/anvil/findings/v1/findings_pb.js";
import { Operation_State, WorkerService } from "../gen/anvil/operations/v1/operations_pb.js";
import { Workflow_State } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { type DomainClients, domainClients, failure, readyIpa } from "./support/domain-fixtures.js";
import { expectCode } from "./support/expect-code.js";
import { claim, type OperationClients, operationClients } from "./support/operations.js";
import { startServer, type TestServer } from "./support/server.js";

describe.each(databaseKinds)("starting operations on %s", (kind) => {
  let server: TestServer;
  let c: OperationClients;
  let d: DomainClients;

  beforeAll(async () => {
    server = await startServer(kind);
    c = await operationClients(server);
    d = domainClients(server.baseUrl, await server.token("acme-editor"));
  });
  afterAll(() => server?.close());

  it("refuses to run a workflow that is not active, starting nothing", async () => {
    const draft = (await c.workflows.createWorkflow({ workflow: { displayName: "draft", steps: [{ name: "a", kind: "demo" }] } })).workflow!;
    await failure(c.workflows.runWorkflow({ id: draft.id }), Code.FailedPrecondition);
    expect((await c.operations.listOperations({ resource: `workflows/${draft.id}` })).operations).toEqual([]);
    await expectCode(c.workflows.runWorkflow({ id: crypto.randomUUID() }), Code.NotFound);
  });

  it("executes a deployed IPA at its pinned revision, agent steps carrying their bound agent", async () => {
    const { workflow, agent, ipa } = await readyIpa(d, "exec");
    await failure(d.ipas.executeIpa({ id: ipa.id }), Code.FailedPrecondition);
    await d.ipas.deployIpa({ id: ipa.id });
    // A later revision (still active) does not change what the deployed IPA runs.
    await d.workflows.updateWorkflow({
      workflow: {
        id: workflow.id,
        state: Workflow_State.ACTIVE,
        steps: [
          { name: "fetch", kind: "http" },
          { name: "review", kind: "agent", dependsOn: ["fetch"] },
          { name: "extra", kind: "http", dependsOn: ["review"] },
        ],
      },
      updateMask: { paths: ["steps"] },
    });
    const op = (await d.ipas.executeIpa({ id: ipa.id })).operation!;
    expect(op).toMatchObject({ kind: "ipa.execute", resource: `ipas/${ipa.id}`, state: Operation_State.QUEUED });
    const seen: string[] = [];
    for (;;) {
      const task = await claim(c, "ipa-worker", { kinds: ["http", "agent"], waitMs: 500 });
      if (!task) break;
      seen.push(task.step);
      if (task.kind === "agent") expect(task.input).toEqual({ agent_id: agent.id });
      await c.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: { ok: true } } });
    }
    expect(seen).toEqual(["fetch", "review"]);
    expect((await c.operations.getOperation({ id: op.id })).operation!.state).toBe(Operation_State.SUCCEEDED);
  });

  it("starts an analysis whose worker reports findings linked to the operation", async () => {
    const requestId = crypto.randomUUID();
    const findings = clientFor(FindingService, "connect-json", server.baseUrl, await server.token("acme-editor"));
    const op = (await findings.startAnalysis({ repository: "github.com/acme/shop", path: "src/", requestId })).operation!;
    expect(op).toMatchObject({ kind: "analysis", resource: "repositories/github.com/acme/shop", state: Operation_State.QUEUED });
    expect((await findings.startAnalysis({ repository: "github.com/acme/shop", path: "src/", requestId })).operation!.id).toBe(op.id);
    // An analyzer worker: claims tasks and reports findings.
    const token = await server.token("acme-admin", { roles: ["worker", "analyzer"] });
    const workers = clientFor(WorkerService, "connect-json", server.baseUrl, token);
    const analyzerFindings = clientFor(FindingService, "connect-json", server.baseUrl, token);
    const task = (await workers.claimTask({ kinds: ["analysis"], workerId: "analyzer", maxWait: { seconds: 5n } })).task!;
    expect(task.input).toEqual({ repository: "github.com/acme/shop", path: "src/" });
    const source = `operations/${task.operationId}`;
    const created = await analyzerFindings.batchCreateFindings({
      requests: [
        { finding: { filePath: "src/cart.ts", line: 10, severity: Finding_Severity.HIGH, issueType: "bug", ruleId: "null-deref", message: "may be null", source } },
      ],
    });
    await workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: { findings: created.findings.length } } });
    const done = (await c.operations.getOperation({ id: op.id })).operation!;
    expect(done).toMatchObject({ state: Operation_State.SUCCEEDED, result: { findings: 1 } });
    expect((await findings.getFinding({ id: created.findings[0]!.id })).finding!.source).toBe(`operations/${op.id}`);
  });
});
