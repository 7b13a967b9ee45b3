import type { ArtifactChunkTable, ArtifactTable } from "../artifacts/artifact.table.js";
import type { ApiKeyTable } from "../apikeys/api-key.table.js";
import type { AuditEventTable } from "../audit/audit-event.table.js";
import type { AgentTable } from "../agents/agent.table.js";
import type { FindingTable } from "../findings/finding.table.js";
import type { IpaTable } from "../ipas/ipa.table.js";
import type { UserTable } from "../users/user.table.js";
import type { WorkflowRevisionTable, WorkflowTable } from "../workflows/workflow.table.js";
import type { OperationEventTable, OperationTable } from "../operations/operation.table.js";
import type { TaskTable } from "../operations/task.table.js";
import type { IdempotencyKeyTable } from "./tables/idempotency-key.table.js";
import type { SettingTable } from "./tables/setting.table.js";
import type { WebhookTable } from "../webhooks/webhook.table.js";

/** Every table, as kysely sees today's schema. Migrations never import this. */
export interface Database {
  users: UserTable;
  workflows: WorkflowTable;
  workflow_revisions: WorkflowRevisionTable;
  agents: AgentTable;
  ipas: IpaTable;
  findings: FindingTable;
  idempotency_keys: IdempotencyKeyTable;
  anvil_settings: SettingTable;
  operations: OperationTable;
  operation_events: OperationEventTable;
  tasks: TaskTable;
  api_keys: ApiKeyTable;
  audit_events: AuditEventTable;
  webhooks: WebhookTable;
  artifacts: ArtifactTable;
  artifact_chunks: ArtifactChunkTable;
}
