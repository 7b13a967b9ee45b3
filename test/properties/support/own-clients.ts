import { AgentService, type Agent } from "../../../gen/anvil/agents/v1/agents_pb.js";
import { type Finding, FindingService, Finding_Severity } from "../../../gen/anvil/findings/v1/findings_pb.js";
import { type Ipa, IpaService } from "../../../gen/anvil/ipas/v1/ipas_pb.js";
import { type Operation, type Task, WorkerService } from "../../../gen/anvil/operations/v1/operations_pb.js";
import { type User, UserService } from "../../../gen/anvil/users/v1/users_pb.js";
import { type Workflow, WorkflowService, Workflow_State } from "../../../gen/anvil/workflows/v1/workflows_pb.js";
import type { JsonObject } from "@bufbuild/protobuf";
import { clientFor } from "../../support/clients.js";
import type { TestServer } from "../../support/server.js";
import { methodNamed } from "./api-methods.js";
import { callRpc } from "./call.js";

/** Makers of fresh resources of one tenant, for requests that must succeed. */
export interface OwnClients {
  user(seed: string): Promise<User>;
  /** An active workflow of one step of `kind` (default `demo`). */
  workflow(seed: string, kind?: string): Promise<Workflow>;
  /** An active workflow `fetch (http) → review (agent)`, as IPAs need. */
  ipaWorkflow(seed: string): Promise<Workflow>;
  agent(seed: string): Promise<Agent>;
  ipa(seed: string, deployed: boolean): Promise<Ipa>;
  finding(seed: string): Promise<Finding>;
  /** Runs a fresh one-step workflow of `kind`. */
  run(seed: string, kind?: string): Promise<Operation>;
  /** A task of a kind of its own, claimed with a long lease. */
  leased(seed: string): Promise<Task>;
  /** An empty artifact `<seed>.txt` uploaded by a leased task of its own; its operation's id and its name. */
  artifact(seed: string): Promise<{ operationId: string; name: string }>;
  /** An API key (ApiKeyService), as proto3 JSON. */
  apiKey(seed: string): Promise<JsonObject>;
  /** A webhook endpoint (WebhookService) running a fresh workflow, as proto3 JSON. */
  webhook(seed: string): Promise<JsonObject>;
  /** Calls the API method `name` over Connect JSON; throws unless it succeeds. */
  call(name: string, request: JsonObject): Promise<JsonObject>;
}

/** OwnClients of tenant admin `keyId`, over Connect JSON. */
export async function ownClients(server: TestServer, keyId = "acme-admin"): Promise<OwnClients> {
  const token = await server.token(keyId);
  const users = clientFor(UserService, "connect-json", server.baseUrl, token);
  const workflows = clientFor(WorkflowService, "connect-json", server.baseUrl, token);
  const agents = clientFor(AgentService, "connect-json", server.baseUrl, token);
  const ipas = clientFor(IpaService, "connect-json", server.baseUrl, token);
  const findings = clientFor(FindingService, "connect-json", server.baseUrl, token);
  const workers = clientFor(WorkerService, "connect-json", server.baseUrl, token);
  const own: OwnClients = {
    user: async (seed) => (await users.createUser({ user: { email: `${seed}@example.com`, displayName: seed, roles: ["viewer"] } })).user!,
    workflow: async (seed, kind = "demo") =>
      (await workflows.createWorkflow({ workflow: { displayName: seed, state: Workflow_State.ACTIVE, steps: [{ name: "only", kind }] } })).workflow!,
    ipaWorkflow: async (seed) =>
      (
        await workflows.createWorkflow({
          workflow: {
            displayName: seed,
            state: Workflow_State.ACTIVE,
            steps: [
              { name: "fetch", kind: "http" },
              { name: "review", kind: "agent", dependsOn: ["fetch"] },
            ],
          },
        })
      ).workflow!,
    agent: async (seed) => (await agents.createAgent({ agent: { displayName: seed, model: "claude-sonnet-4" } })).agent!,
    ipa: async (seed, deployed) => {
      const workflow = await own.ipaWorkflow(seed);
      const agent = await own.agent(seed);
      const ipa = (await ipas.createIpa({ ipa: { displayName: seed, workflowId: workflow.id, agentBindings: { review: agent.id } } })).ipa!;
      return deployed ? (await ipas.deployIpa({ id: ipa.id })).ipa! : ipa;
    },
    finding: async (seed) =>
      (
        await findings.createFinding({
          finding: { filePath: `${seed}/a.ts`, line: 42, severity: Finding_Severity.HIGH, issueType: "null-dereference", message: "value 'amount' may be null", source: "props" },
        })
      ).finding!,
    run: async (seed, kind) => (await workflows.runWorkflow({ id: (await own.workflow(seed, kind)).id })).operation!,
    leased: async (seed) => {
      const kind = `k${seed}`;
      await own.run(seed, kind);
      const claimed = await workers.claimTask({ kinds: [kind], workerId: "props", maxWait: { seconds: 5n }, leaseDuration: { seconds: 600n } });
      if (!claimed.task) throw new Error(`no ${kind} task to claim`);
      return claimed.task;
    },
    artifact: async (seed) => {
      const task = await own.leased(seed);
      const name = `${seed}.txt`;
      await own.call("UploadArtifact", { header: { taskId: task.id, leaseToken: task.leaseToken, name, contentType: "text/plain" } });
      return { operationId: task.operationId, name };
    },
    apiKey: async (seed) => (await own.call("CreateApiKey", { apiKey: { displayName: seed, roles: ["viewer"] } })).apiKey as JsonObject,
    webhook: async (seed) =>
      (await own.call("CreateWebhook", { webhook: { displayName: seed, runWorkflow: { workflowId: (await own.workflow(seed)).id } } })).webhook as JsonObject,
    // By name, through the descriptors: services that typed clients here do not know yet are callable too.
    call: async (name, request) => {
      const method = methodNamed(name);
      if (!method) throw new Error(`no API method ${name}`);
      const answer = await callRpc("connect-json", server.baseUrl, token, method, request);
      if (answer.code !== "ok") throw new Error(`${name}: ${answer.code} ${answer.message}`);
      return answer.json as JsonObject;
    },
  };
  return own;
}
