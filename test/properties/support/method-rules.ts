// How the properties call each method: one rule per method name. The walks
// take the methods from the descriptors and fail on a method without a rule
// here, so a new RPC cannot go untested: its author adds its rule.
import type { JsonObject } from "@bufbuild/protobuf";
import type { OwnClients } from "./own-clients.js";
import type { TenantWorld } from "./tenant-world.js";

/** How one method is called by the properties. */
export interface MethodRule {
  /**
   * Requests another tenant sends, made of tenant A's ids, filters, page
   * tokens, request ids and leases.
   */
  foreign(a: TenantWorld): Record<string, unknown>[];
  /** Codes the other tenant may get (`ok` answers are then checked to hold nothing of A's). */
  readonly foreignCodes: readonly string[];
  /** Whether an `ok` answer to a foreign request must be empty: no ids, no non-zero counts. */
  readonly foreignEmpty?: boolean;
  /**
   * A request the owning tenant makes that succeeds, on fresh resources of
   * its own where the call changes them. `seed` is a lowercase token to use
   * in names and paths, so two calls differ only by it.
   */
  valid(own: OwnClients, seed: string): Promise<JsonObject>;
  /** For methods with `request_id`: the same call with another body. */
  vary?(own: OwnClients, request: JsonObject, seed: string): Promise<JsonObject>;
  /** Response fields the first answer carries once and a retry leaves out, as the proto documents (a secret). */
  readonly retryOmits?: readonly string[];
}

const notFound = ["not_found"] as const;
// A page token is bound to its tenant: refused, or read within the caller's own data.
const listCodes = ["ok", "invalid_argument"] as const;

const finding = (path: string, message = "value 'amount' may be null"): JsonObject => ({
  filePath: path,
  line: 42,
  endLine: 44,
  severity: "SEVERITY_HIGH",
  issueType: "null-dereference",
  ruleId: "ts/null-check",
  message,
  source: "props",
});

const steps = (kind: string) => [{ name: "only", kind }];

/** Every method's rule, by method name. */
export const methodRules: Readonly<Record<string, MethodRule>> = {
  // --- users
  GetUser: { foreign: (a) => [{ id: a.users[0]!.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.user(s)).id }) },
  ListUsers: { foreign: (a) => [{ pageToken: a.pageTokens.ListUsers!, pageSize: 50 }], foreignCodes: listCodes, foreignEmpty: true, valid: async () => ({ pageSize: 2 }) },
  CreateUser: {
    foreign: (a) => [{ user: { email: a.users[0]!.email, displayName: "b", roles: ["viewer"] }, requestId: a.requestIds.CreateUser! }],
    foreignCodes: ["ok"],
    valid: async (_o, s) => ({ user: { email: `${s}@example.com`, displayName: s, roles: ["viewer"] } }),
    vary: async (_o, r) => ({ ...r, user: { ...(r.user as JsonObject), displayName: "another" } }),
  },
  UpdateUser: {
    foreign: (a) => [{ user: { id: a.users[0]!.id, displayName: "hijacked" }, updateMask: "displayName" }],
    foreignCodes: notFound,
    valid: async (o, s) => ({ user: { id: (await o.user(s)).id, displayName: `${s} renamed` }, updateMask: "displayName" }),
  },
  DeleteUser: { foreign: (a) => [{ id: a.users[1]!.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.user(s)).id }) },

  // --- workflows
  GetWorkflow: { foreign: (a) => [{ id: a.workflow.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.workflow(s)).id }) },
  ListWorkflows: { foreign: (a) => [{ pageToken: a.pageTokens.ListWorkflows!, pageSize: 50 }], foreignCodes: listCodes, foreignEmpty: true, valid: async () => ({ pageSize: 2 }) },
  CreateWorkflow: {
    foreign: (a) => [{ workflow: { displayName: "b", steps: steps("demo") }, requestId: a.requestIds.CreateWorkflow! }],
    foreignCodes: ["ok"],
    valid: async (_o, s) => ({ workflow: { displayName: s, state: "STATE_ACTIVE", steps: steps("demo") } }),
    vary: async (_o, r) => ({ ...r, workflow: { ...(r.workflow as JsonObject), displayName: "another" } }),
  },
  UpdateWorkflow: {
    foreign: (a) => [{ workflow: { id: a.workflow.id, description: "hijacked" }, updateMask: "description" }],
    foreignCodes: notFound,
    valid: async (o, s) => ({ workflow: { id: (await o.workflow(s)).id, description: s }, updateMask: "description" }),
  },
  DeleteWorkflow: { foreign: (a) => [{ id: a.workflow.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.workflow(s)).id }) },
  ListWorkflowRevisions: {
    foreign: (a) => [{ id: a.workflow.id }, { id: a.workflow.id, pageToken: a.pageTokens.ListWorkflowRevisions! }],
    foreignCodes: ["not_found", "invalid_argument"],
    valid: async (o, s) => ({ id: (await o.workflow(s)).id }),
  },
  RunWorkflow: {
    foreign: (a) => [{ id: a.workflow.id, requestId: a.requestIds.RunWorkflow! }],
    foreignCodes: notFound,
    valid: async (o, s) => ({ id: (await o.workflow(s)).id }),
    vary: async (o, r, s) => ({ ...r, id: (await o.workflow(`${s}v`)).id }),
  },

  // --- agents
  GetAgent: { foreign: (a) => [{ id: a.agents[0]!.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.agent(s)).id }) },
  ListAgents: { foreign: (a) => [{ pageToken: a.pageTokens.ListAgents!, pageSize: 50 }], foreignCodes: listCodes, foreignEmpty: true, valid: async () => ({ pageSize: 2 }) },
  CreateAgent: {
    foreign: (a) => [{ agent: { displayName: "b", model: "claude-sonnet-4" }, requestId: a.requestIds.CreateAgent! }],
    foreignCodes: ["ok"],
    valid: async (_o, s) => ({ agent: { displayName: s, model: "claude-sonnet-4" } }),
    vary: async (_o, r) => ({ ...r, agent: { ...(r.agent as JsonObject), displayName: "another" } }),
  },
  UpdateAgent: {
    foreign: (a) => [{ agent: { id: a.agents[0]!.id, instructions: "hijacked" }, updateMask: "instructions" }],
    foreignCodes: notFound,
    valid: async (o, s) => ({ agent: { id: (await o.agent(s)).id, instructions: s }, updateMask: "instructions" }),
  },
  DeleteAgent: { foreign: (a) => [{ id: a.agents[0]!.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.agent(s)).id }) },

  // --- IPAs
  GetIpa: { foreign: (a) => [{ id: a.ipa.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.ipa(s, false)).id }) },
  ListIpas: { foreign: (a) => [{ pageToken: a.pageTokens.ListIpas!, pageSize: 50 }], foreignCodes: listCodes, foreignEmpty: true, valid: async () => ({ pageSize: 2 }) },
  CreateIpa: {
    // Another tenant's workflow and agent are unknown to B: a draft naming them
    // may be kept (drafts may name what does not exist yet) but shows nothing of A's.
    foreign: (a) => [{ ipa: { displayName: "b", workflowId: a.ipaWorkflow.id, agentBindings: { review: a.agents[0]!.id } }, requestId: a.requestIds.CreateIpa! }],
    foreignCodes: ["ok", "not_found", "failed_precondition"],
    valid: async (o, s) => {
      const workflow = await o.ipaWorkflow(s);
      return { ipa: { displayName: s, workflowId: workflow.id, agentBindings: { review: (await o.agent(s)).id } } };
    },
    vary: async (_o, r) => ({ ...r, ipa: { ...(r.ipa as JsonObject), displayName: "another" } }),
  },
  UpdateIpa: {
    foreign: (a) => [{ ipa: { id: a.draftIpa.id, displayName: "hijacked" }, updateMask: "displayName" }],
    foreignCodes: notFound,
    valid: async (o, s) => ({ ipa: { id: (await o.ipa(s, false)).id, displayName: `${s} renamed` }, updateMask: "displayName" }),
  },
  DeleteIpa: { foreign: (a) => [{ id: a.draftIpa.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.ipa(s, false)).id }) },
  DeployIpa: { foreign: (a) => [{ id: a.draftIpa.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.ipa(s, false)).id }) },
  UndeployIpa: { foreign: (a) => [{ id: a.ipa.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.ipa(s, true)).id }) },
  ExecuteIpa: {
    foreign: (a) => [{ id: a.ipa.id, requestId: a.requestIds.ExecuteIpa! }],
    foreignCodes: notFound,
    valid: async (o, s) => ({ id: (await o.ipa(s, true)).id }),
    vary: async (o, r, s) => ({ ...r, id: (await o.ipa(`${s}v`, true)).id }),
  },

  // --- findings
  GetFinding: { foreign: (a) => [{ id: a.findings[0]!.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.finding(s)).id }) },
  ListFindings: {
    foreign: (a) => [{ pageToken: a.pageTokens.ListFindings!, pageSize: 50 }, { filePathPrefix: a.findingDir }, { filePath: a.findings[0]!.filePath }],
    foreignCodes: listCodes,
    foreignEmpty: true,
    valid: async (o, s) => {
      await o.finding(s);
      return { filePathPrefix: `${s}/` };
    },
  },
  CreateFinding: {
    // The same finding as A's: it must not be merged into A's by fingerprint.
    foreign: (a) => [{ finding: finding(a.findings[0]!.filePath, a.findings[0]!.message), requestId: a.requestIds.CreateFinding! }],
    foreignCodes: ["ok"],
    valid: async (_o, s) => ({ finding: finding(`${s}/a.ts`) }),
    vary: async (_o, r) => ({ ...r, finding: { ...(r.finding as JsonObject), line: 7 } }),
  },
  BatchCreateFindings: {
    foreign: (a) => [{ requests: [{ finding: finding(a.findings[1]!.filePath, a.findings[1]!.message) }] }],
    foreignCodes: ["ok"],
    valid: async (_o, s) => ({ requests: [{ finding: finding(`${s}/a.ts`) }, { finding: finding(`${s}/b.ts`) }] }),
  },
  UpdateFinding: {
    foreign: (a) => [{ finding: { id: a.findings[0]!.id, suggestion: "hijacked" }, updateMask: "suggestion" }],
    foreignCodes: notFound,
    valid: async (o, s) => ({ finding: { id: (await o.finding(s)).id, suggestion: s }, updateMask: "suggestion" }),
  },
  DeleteFinding: { foreign: (a) => [{ id: a.findings[1]!.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.finding(s)).id }) },
  GetFindingSummary: {
    foreign: (a) => [{}, { filePathPrefix: a.findingDir }],
    foreignCodes: ["ok"],
    foreignEmpty: true,
    valid: async (o, s) => {
      await o.finding(s);
      return { filePathPrefix: `${s}/`, windowDays: 7 };
    },
  },
  CorrelateAlert: {
    foreign: (a) => [{ filePath: a.findings[0]!.filePath, line: 42, errorMessage: a.findings[0]!.message }],
    foreignCodes: ["ok"],
    foreignEmpty: true,
    valid: async (o, s) => {
      await o.finding(s);
      return { filePath: `${s}/a.ts`, line: 43, errorMessage: "TypeError: amount is null" };
    },
  },
  StartAnalysis: {
    // A's request id on a repository of B's own: B's analysis, never A's operation.
    foreign: (a) => [{ repository: "github.com/globex/shop", requestId: a.requestIds.StartAnalysis! }],
    foreignCodes: ["ok"],
    valid: async (_o, s) => ({ repository: `github.com/${s}/shop`, path: "src/" }),
    vary: async (_o, r) => ({ ...r, path: "lib/" }),
  },

  // --- operations
  GetOperation: { foreign: (a) => [{ id: a.leasedOperation.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.run(s)).id }) },
  ListOperations: {
    foreign: (a) => [{ pageToken: a.pageTokens.ListOperations!, pageSize: 50 }, { resource: a.leasedOperation.resource }, { kind: a.analysisOperation.kind, resource: a.analysisOperation.resource }],
    foreignCodes: listCodes,
    foreignEmpty: true,
    valid: async (o, s) => ({ resource: (await o.run(s)).resource }),
  },
  CancelOperation: { foreign: (a) => [{ id: a.queuedOperation.id }, { id: a.leasedOperation.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.run(s)).id }) },
  ListOperationEvents: {
    foreign: (a) => [{ id: a.leasedOperation.id }, { id: a.leasedOperation.id, pageToken: a.pageTokens.ListOperationEvents! }],
    foreignCodes: ["not_found", "invalid_argument"],
    valid: async (o, s) => ({ id: (await o.run(s)).id }),
  },
  WatchOperation: { foreign: (a) => [{ id: a.leasedOperation.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.run(s)).id }) },
  ListArtifacts: {
    foreign: (a) => [{ operationId: a.leasedOperation.id }, { operationId: a.leasedOperation.id, pageToken: a.pageTokens.ListArtifacts! }],
    foreignCodes: ["not_found", "invalid_argument"],
    valid: async (o, s) => ({ operationId: (await o.artifact(s)).operationId }),
  },
  DownloadArtifact: {
    foreign: (a) => [{ operationId: a.leasedOperation.id, name: a.artifactName }],
    foreignCodes: notFound,
    valid: async (o, s) => await o.artifact(s),
  },

  // --- API keys
  GetApiKey: { foreign: (a) => [{ id: a.apiKeys[0]!.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.apiKey(s)).id! }) },
  ListApiKeys: { foreign: (a) => [{ pageToken: a.pageTokens.ListApiKeys!, pageSize: 50 }], foreignCodes: listCodes, foreignEmpty: true, valid: async () => ({ pageSize: 2 }) },
  CreateApiKey: {
    foreign: (a) => [{ apiKey: { displayName: "b", roles: ["viewer"] }, requestId: a.requestIds.CreateApiKey! }],
    foreignCodes: ["ok"],
    valid: async (_o, s) => ({ apiKey: { displayName: s, roles: ["viewer"] } }),
    vary: async (_o, r) => ({ ...r, apiKey: { ...(r.apiKey as JsonObject), displayName: "another" } }),
    // "A retry … returns the key created first without its secret."
    retryOmits: ["secret"],
  },
  RevokeApiKey: { foreign: (a) => [{ id: a.apiKeys[0]!.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.apiKey(s)).id! }) },
  DeleteApiKey: { foreign: (a) => [{ id: a.apiKeys[1]!.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.apiKey(s)).id! }) },

  // --- webhooks
  GetWebhook: { foreign: (a) => [{ id: a.webhooks[0]!.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.webhook(s)).id! }) },
  ListWebhooks: { foreign: (a) => [{ pageToken: a.pageTokens.ListWebhooks!, pageSize: 50 }], foreignCodes: listCodes, foreignEmpty: true, valid: async () => ({ pageSize: 2 }) },
  CreateWebhook: {
    // A's request id, with a target of A's: B's own endpoint (its run would find no such workflow in B).
    foreign: (a) => [{ webhook: { displayName: "b", runWorkflow: { workflowId: a.workflow.id } }, requestId: a.requestIds.CreateWebhook! }],
    foreignCodes: ["ok"],
    valid: async (_o, s) => ({ webhook: { displayName: s, correlateAlert: { maxResults: 3 } } }),
    vary: async (_o, r) => ({ ...r, webhook: { ...(r.webhook as JsonObject), displayName: "another" } }),
    // "A retry … returns the endpoint created first without its secret."
    retryOmits: ["secret"],
  },
  UpdateWebhook: {
    foreign: (a) => [{ webhook: { id: a.webhooks[0]!.id, displayName: "hijacked" }, updateMask: "displayName" }],
    foreignCodes: notFound,
    valid: async (o, s) => ({ webhook: { id: (await o.webhook(s)).id!, displayName: `${s} renamed` }, updateMask: "displayName" }),
  },
  DeleteWebhook: { foreign: (a) => [{ id: a.webhooks[1]!.id }], foreignCodes: notFound, valid: async (o, s) => ({ id: (await o.webhook(s)).id! }) },

  // --- audit
  ListAuditEvents: {
    // Filters naming A's resources and A's credential: B's own log holds none of them.
    foreign: (a) => [{ resourceId: a.users[0]!.id, pageSize: 50 }, { credential: "service_account:acme-admin" }],
    foreignCodes: listCodes,
    foreignEmpty: true,
    valid: async () => ({ pageSize: 2 }),
  },
  ExportAuditEvents: {
    // B's whole log: none of A's events.
    foreign: () => [{}],
    foreignCodes: ["ok"],
    valid: async () => ({ startTime: new Date(Date.now() - 3_600_000).toISOString() }),
  },

  // --- identity
  GetCaller: {
    // The caller learns about itself only: B's answer names B, whatever A did.
    foreign: () => [{}],
    foreignCodes: ["ok"],
    valid: async () => ({}),
  },
  GetSignInOptions: {
    // Public: the gateway's sign-in configuration, the same for everyone and about no tenant.
    foreign: () => [{}],
    foreignCodes: ["ok"],
    valid: async () => ({}),
  },

  // --- workers
  ClaimTask: {
    // Every kind A has work queued in, as A's own worker: B must still get none of A's tasks.
    foreign: (a) => [{ kinds: a.taskKinds, workerId: `${a.tag}-worker`, maxWait: "0.2s" }],
    foreignCodes: ["ok"],
    valid: async (o, s) => {
      await o.run(s, `k${s}`);
      return { kinds: [`k${s}`], workerId: "props", maxWait: "5s", leaseDuration: "60s" };
    },
  },
  ReportProgress: {
    foreign: (a) => [{ taskId: a.leasedTask.id, leaseToken: a.leasedTask.leaseToken, progress: 0.9, stage: "hijacked" }],
    foreignCodes: notFound,
    valid: async (o, s) => {
      const task = await o.leased(s);
      return { taskId: task.id, leaseToken: task.leaseToken, progress: 0.5, stage: "half" };
    },
  },
  UploadArtifact: {
    foreign: (a) => [{ header: { taskId: a.leasedTask.id, leaseToken: a.leasedTask.leaseToken, name: a.artifactName, contentType: "text/plain" } }],
    foreignCodes: notFound,
    valid: async (o, s) => {
      const task = await o.leased(s);
      return { header: { taskId: task.id, leaseToken: task.leaseToken, name: `${s}.txt` } };
    },
  },
  CompleteTask: {
    foreign: (a) => [{ taskId: a.leasedTask.id, leaseToken: a.leasedTask.leaseToken, result: { hijacked: true } }],
    foreignCodes: notFound,
    valid: async (o, s) => {
      const task = await o.leased(s);
      return { taskId: task.id, leaseToken: task.leaseToken, result: { done: true } };
    },
  },
  StreamTasks: {
    // Every kind A has work queued in, as A's own worker: B's stream must still carry none of A's tasks.
    foreign: (a) => [{ kinds: a.taskKinds, workerId: `${a.tag}-worker`, maxDuration: "0.3s" }],
    foreignCodes: ["ok"],
    valid: async (o, s) => {
      await o.run(s, `k${s}`);
      return { kinds: [`k${s}`], workerId: `props-${s}`, maxDuration: "0.5s", leaseDuration: "60s" };
    },
  },
  BatchCompleteTasks: {
    // Answered OK, A's task refused inside the answer (NOT_FOUND in B's tenant): nothing of A's changes.
    foreign: (a) => [{ requests: [{ taskId: a.leasedTask.id, leaseToken: a.leasedTask.leaseToken, result: { hijacked: true } }] }],
    foreignCodes: ["ok"],
    valid: async (o, s) => {
      const task = await o.leased(s);
      return { requests: [{ taskId: task.id, leaseToken: task.leaseToken, result: { done: true } }] };
    },
  },
};
