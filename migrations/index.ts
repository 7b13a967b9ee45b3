import type { Migration } from "kysely";
import * as foundation from "./20261123000000_foundation.js";
import * as users from "./20261123000100_users.js";
import * as workflows from "./20261123000210_workflows.js";
import * as agents from "./20261123000220_agents.js";
import * as ipas from "./20261123000230_ipas.js";
import * as findings from "./20261123000500_findings.js";
import * as operations from "./20261123000600_operations.js";
import * as apiKeys from "./20261129000100_api_keys.js";
import * as auditEvents from "./20261129002000_audit_events.js";
import * as housekeepingIndexes from "./20261129003000_housekeeping_indexes.js";
import * as taskTraceParent from "./20261129005000_task_trace_parent.js";
import * as webhooks from "./20261129006000_webhooks.js";
import * as artifacts from "./20261129007000_artifacts.js";
import * as sagas from "./20261129008000_sagas.js";
import * as taskRunAfterMicroseconds from "./20261129009000_task_run_after_microseconds.js";

/**
 * Every migration, by name; names sort in the order they apply. Listed
 * explicitly (a test checks the list matches the folder) so that the
 * migrator works the same under tsx, vitest and compiled JavaScript.
 */
export const migrations: Record<string, Migration> = {
  "20261123000000_foundation": foundation,
  "20261123000100_users": users,
  "20261123000210_workflows": workflows,
  "20261123000220_agents": agents,
  "20261123000230_ipas": ipas,
  "20261123000500_findings": findings,
  "20261123000600_operations": operations,
  "20261129000100_api_keys": apiKeys,
  "20261129002000_audit_events": auditEvents,
  "20261129003000_housekeeping_indexes": housekeepingIndexes,
  "20261129005000_task_trace_parent": taskTraceParent,
  "20261129006000_webhooks": webhooks,
  "20261129007000_artifacts": artifacts,
  "20261129008000_sagas": sagas,
  "20261129009000_task_run_after_microseconds": taskRunAfterMicroseconds,
};
