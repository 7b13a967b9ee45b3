// Data in one tenant of every kind the API knows — users, workflows (with
// revisions), agents, IPAs (deployed and draft), findings, operations with
// events, a task leased to the tenant's worker and a task still waiting —
// so that another tenant's calls have something to find if isolation breaks.
import { randomUUID } from "node:crypto";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { AgentService, type Agent } from "../../../gen/anvil/agents/v1/agents_pb.js";
import { type Finding, FindingService, Finding_Severity } from "../../../gen/anvil/findings/v1/findings_pb.js";
import { type Ipa, IpaService } from "../../../gen/anvil/ipas/v1/ipas_pb.js";
import { type Operation, OperationService, type Task, WorkerService } from "../../../gen/anvil/operations/v1/operations_pb.js";
import { type User, UserService } from "../../../gen/anvil/users/v1/users_pb.js";
import { type Workflow, WorkflowService, Workflow_State } from "../../../gen/anvil/workflows/v1/workflows_pb.js";
import { clientFor } from "../../support/clients.js";
import type { TestServer } from "../../support/server.js";
import { methodNamed } from "./api-methods.js";
import { ownClients } from "./own-clients.js";

/** What tenant A holds, with the ids, tokens and request ids another tenant will try. */
export interface TenantWorld {
  /** A string found in A's data only (names, paths, messages). */
  readonly tag: string;
  readonly users: readonly User[];
  readonly workflow: Workflow;
  readonly ipaWorkflow: Workflow;
  readonly agents: readonly Agent[];
  /** A deployed IPA and a draft one. */
  readonly ipa: Ipa;
  readonly draftIpa: Ipa;
  readonly findings: readonly Finding[];
  /** Directory every finding of A lives under. */
  readonly findingDir: string;
  /** An operation whose task A's worker holds, and that task with its lease. */
  readonly leasedOperation: Operation;
  readonly leasedTask: Task;
  /** An operation whose task waits in the queue for A's workers. */
  readonly queuedOperation: Operation;
  readonly ipaOperation: Operation;
  readonly analysisOperation: Operation;
  /** Request ids A used, by the method that used them. */
  readonly requestIds: Readonly<Record<string, string>>;
  /** API keys (ApiKeyService), as proto3 JSON; none while the gateway serves no such service. */
  readonly apiKeys: readonly JsonObject[];
  /** Webhook endpoints (WebhookService), as proto3 JSON; none while the gateway serves no such service. */
  readonly webhooks: readonly JsonObject[];
  /** The name of an artifact of `leasedOperation` (it has two, so ListArtifacts has a next page). */
  readonly artifactName: string;
  /** Kinds of every task A has (queued or leased). */
  readonly taskKinds: readonly string[];
  /** A next-page token A was given, by list method name. */
  readonly pageTokens: Readonly<Record<string, string>>;
}

const ms = (n: number) => ({ seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1e6 });

/** Builds tenant `keyId`'s world (an admin key) through the API, as that tenant's own callers would. */
export async function buildTenantWorld(server: TestServer, keyId = "acme-admin"): Promise<TenantWorld> {
  const tag = `only-${keyId}-${randomUUID().slice(0, 8)}`;
  const token = await server.token(keyId);
  const users = clientFor(UserService, "connect-json", server.baseUrl, token);
  const workflows = clientFor(WorkflowService, "connect-json", server.baseUrl, token);
  const agents = clientFor(AgentService, "connect-json", server.baseUrl, token);
  const ipas = clientFor(IpaService, "connect-json", server.baseUrl, token);
  const findings = clientFor(FindingService, "connect-json", server.baseUrl, token);
  const operations = clientFor(OperationService, "connect-json", server.baseUrl, token);
  const workers = clientFor(WorkerService, "connect-json", server.baseUrl, await server.token(keyId, { roles: ["worker"] }));
  const requestIds: Record<string, string> = {};
  const rid = (method: string) => (requestIds[method] = randomUUID());

  const userList: User[] = [];
  for (const n of [1, 2]) {
    userList.push((await users.createUser({ user: { email: `${tag}-${n}@example.com`, displayName: `${tag} user`, roles: ["viewer"] }, requestId: n === 1 ? rid("CreateUser") : "" })).user!);
  }
  const workflow = (
    await workflows.createWorkflow({
      workflow: { displayName: `${tag} demo`, description: tag, state: Workflow_State.ACTIVE, steps: [{ name: "only", kind: "demo" }] },
      requestId: rid("CreateWorkflow"),
    })
  ).workflow!;
  // A second revision, so revisions have a next page.
  const revised = (
    await workflows.updateWorkflow({ workflow: { id: workflow.id, description: `${tag} revised`, etag: workflow.etag }, updateMask: create(FieldMaskSchema, { paths: ["description"] }) })
  ).workflow!;
  const ipaWorkflow = (
    await workflows.createWorkflow({
      workflow: {
        displayName: `${tag} ipa`,
        state: Workflow_State.ACTIVE,
        steps: [
          { name: "fetch", kind: "http" },
          { name: "review", kind: "agent", dependsOn: ["fetch"] },
        ],
      },
    })
  ).workflow!;
  const agentList: Agent[] = [];
  for (const n of [1, 2]) {
    agentList.push((await agents.createAgent({ agent: { displayName: `${tag} agent ${n}`, model: "claude-sonnet-4", instructions: tag }, requestId: n === 1 ? rid("CreateAgent") : "" })).agent!);
  }
  const draft = (await ipas.createIpa({ ipa: { displayName: `${tag} ipa`, workflowId: ipaWorkflow.id, agentBindings: { review: agentList[0]!.id } }, requestId: rid("CreateIpa") })).ipa!;
  const toDeploy = (await ipas.createIpa({ ipa: { displayName: `${tag} deployed`, workflowId: ipaWorkflow.id, agentBindings: { review: agentList[1]!.id } } })).ipa!;
  const ipa = (await ipas.deployIpa({ id: toDeploy.id, etag: toDeploy.etag })).ipa!;

  const findingDir = `${tag}/src/`;
  const findingList: Finding[] = [];
  for (const [n, severity] of [[1, Finding_Severity.HIGH], [2, Finding_Severity.LOW]] as const) {
    findingList.push(
      (
        await findings.createFinding({
          finding: {
            filePath: `${findingDir}billing${n}.ts`,
            line: 42,
            endLine: 44,
            severity,
            issueType: "null-dereference",
            ruleId: "ts/null-check",
            message: `value 'amount' may be null (${tag})`,
            source: tag,
          },
          requestId: n === 1 ? rid("CreateFinding") : "",
        })
      ).finding!,
    );
  }

  const leasedOperation = (await workflows.runWorkflow({ id: workflow.id, requestId: rid("RunWorkflow") })).operation!;
  const leasedTask = (await workers.claimTask({ kinds: ["demo"], workerId: `${tag}-worker`, maxWait: ms(5_000), leaseDuration: ms(600_000) })).task!;
  // Progress writes an event, so the operation's events have a next page.
  await workers.reportProgress({ taskId: leasedTask.id, leaseToken: leasedTask.leaseToken, progress: 0.1, stage: tag, message: tag });
  const queuedOperation = (await workflows.runWorkflow({ id: workflow.id })).operation!;
  const ipaOperation = (await ipas.executeIpa({ id: ipa.id, requestId: rid("ExecuteIpa") })).operation!;
  const analysisOperation = (await findings.startAnalysis({ repository: `github.com/${tag}/shop`, path: findingDir, requestId: rid("StartAnalysis") })).operation!;

  const pageTokens: Record<string, string> = {
    ListUsers: (await users.listUsers({ pageSize: 1 })).nextPageToken,
    ListWorkflows: (await workflows.listWorkflows({ pageSize: 1 })).nextPageToken,
    ListWorkflowRevisions: (await workflows.listWorkflowRevisions({ id: workflow.id, pageSize: 1 })).nextPageToken,
    ListAgents: (await agents.listAgents({ pageSize: 1 })).nextPageToken,
    ListIpas: (await ipas.listIpas({ pageSize: 1 })).nextPageToken,
    ListFindings: (await findings.listFindings({ pageSize: 1 })).nextPageToken,
    ListOperations: (await operations.listOperations({ pageSize: 1 })).nextPageToken,
    ListOperationEvents: (await operations.listOperationEvents({ id: leasedOperation.id, pageSize: 1 })).nextPageToken,
  };
  // Services without typed clients here, called by name through the descriptors.
  const own = await ownClients(server, keyId);
  const artifactName = `${tag}.txt`;
  for (const name of [artifactName, `${tag}-2.txt`]) {
    await own.call("UploadArtifact", { header: { taskId: leasedTask.id, leaseToken: leasedTask.leaseToken, name, contentType: "text/plain" } });
  }
  pageTokens.ListArtifacts = (await own.call("ListArtifacts", { operationId: leasedOperation.id, pageSize: 1 })).nextPageToken as string;
  const apiKeys: JsonObject[] = [];
  if (methodNamed("CreateApiKey")) {
    for (const n of [1, 2]) {
      const res = await own.call("CreateApiKey", { apiKey: { displayName: `${tag} key ${n}`, roles: ["viewer"] }, ...(n === 1 ? { requestId: rid("CreateApiKey") } : {}) });
      apiKeys.push(res.apiKey as JsonObject);
    }
    pageTokens.ListApiKeys = (await own.call("ListApiKeys", { pageSize: 1 })).nextPageToken as string;
  }
  const webhooks: JsonObject[] = [];
  if (methodNamed("CreateWebhook")) {
    for (const n of [1, 2]) {
      const webhook = { displayName: `${tag} hook ${n}`, runWorkflow: { workflowId: workflow.id } };
      const res = await own.call("CreateWebhook", { webhook, ...(n === 1 ? { requestId: rid("CreateWebhook") } : {}) });
      webhooks.push(res.webhook as JsonObject);
    }
    pageTokens.ListWebhooks = (await own.call("ListWebhooks", { pageSize: 1 })).nextPageToken as string;
  }
  for (const [method, t] of Object.entries(pageTokens)) if (!t) throw new Error(`tenant world: ${method} gave no next page; add data`);
  const tenant = server.keys[keyId]!.tenant;
  const kinds = await server.app.database.db.selectFrom("tasks").select("kind").distinct().where("tenant_id", "=", tenant).execute();
  return {
    tag,
    users: userList,
    workflow: revised,
    ipaWorkflow,
    agents: agentList,
    ipa,
    draftIpa: draft,
    findings: findingList,
    findingDir,
    leasedOperation,
    leasedTask,
    queuedOperation,
    ipaOperation,
    analysisOperation,
    requestIds,
    apiKeys,
    webhooks,
    artifactName,
    taskKinds: kinds.map((k) => k.kind).sort(),
    pageTokens,
  };
}
