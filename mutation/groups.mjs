// The folders `npm run mutate` measures, each with the suites that aim at it.
// Stryker runs once per group: a mutant that survives reruns every test that
// reaches it, and on 2 cores a run over all suites would cost each survivor of
// src/auth (reached by every authenticated call) minutes. Suites start their
// gateway in the vitest process (test/support/server.ts): Stryker sees which
// test reaches which mutant only there. Each group keeps its own incremental
// file, so one group's run does not discard another's results.

/** @typedef {{ name: string, mutate: string[], suites: string[] }} MutationGroup */

/** @type {MutationGroup[]} */
export const groups = [
  {
    name: "auth",
    mutate: ["src/auth/**/*.ts"],
    suites: [
      // Direct tests first (test/vitest.mutate.config.ts runs the suites in this order).
      "test/auth-rules.test.ts",
      "test/token-verifier.test.ts",
      "test/key-store.test.ts",
      "test/oidc-verifier.test.ts",
      // Edges the first run of those left (a file of its own: a changed test file reruns every mutant it killed).
      "test/auth-edges.test.ts",
      "test/auth.test.ts",
      "test/apikeys.test.ts",
      "test/oidc.test.ts",
      "test/method-policies.test.ts",
      "test/properties/permissions.test.ts",
      // Refused calls filed under the tenant their credential claims (credential-claim.ts).
      "test/audit.test.ts",
    ],
  },
  {
    name: "db",
    mutate: ["src/db/**/*.ts"],
    suites: [
      // Direct tests first (test/vitest.mutate.config.ts runs the suites in this order).
      "test/db-rules.test.ts",
      "test/db-transactions.test.ts",
      "test/db-connections.test.ts",
      "test/unit-of-work-rules.test.ts",
      // Edges the first run of those left (a file of its own: a changed test file reruns every mutant it killed).
      "test/db-edges.test.ts",
      "test/db-pool-edges.test.ts",
      "test/db-notify-edges.test.ts",
      "test/scoped-table.test.ts",
      "test/after-commit-announcements.test.ts",
      "test/unit-of-work.test.ts",
      "test/migrations.test.ts",
      "test/database-resilience.test.ts",
      "test/properties/idempotency.test.ts",
      "test/properties/tenant-isolation.test.ts",
    ],
  },
  {
    name: "repositories",
    mutate: ["src/**/*.repository.ts", "!src/db/**"],
    suites: [
      // Direct tests first (test/vitest.mutate.config.ts runs the suites in this order):
      // a mutant they kill costs milliseconds, not an end-to-end suite's gateway.
      "test/task-repository.test.ts",
      "test/operation-repository.test.ts",
      "test/finding-repository.test.ts",
      "test/audit-repository.test.ts",
      "test/api-key-repository.test.ts",
      "test/user-repository.test.ts",
      "test/agent-repository.test.ts",
      "test/ipa-repository.test.ts",
      "test/workflow-repository.test.ts",
      "test/webhook-repository.test.ts",
      "test/artifact-repository.test.ts",
      "test/retention-repository.test.ts",
      "test/properties/tenant-isolation.test.ts",
      "test/properties/idempotency.test.ts",
      "test/users.test.ts",
      "test/workflows.test.ts",
      "test/agents.test.ts",
      "test/ipas.test.ts",
      "test/findings.test.ts",
      "test/findings-rules.test.ts",
      "test/operations.test.ts",
      "test/apikeys.test.ts",
      "test/audit.test.ts",
      // The repositories of webhooks, artifacts, housekeeping's retention and sagas' compensations.
      "test/webhooks.test.ts",
      "test/artifacts.test.ts",
      "test/housekeeping.test.ts",
      "test/sagas.test.ts",
    ],
  },
  {
    name: "rpc",
    mutate: ["src/rpc/**/*.ts"],
    suites: [
      // Direct tests first (see the repositories group).
      "test/rpc-rules.test.ts",
      "test/request-budget-rules.test.ts",
      "test/rpc-validation-rules.test.ts",
      // The interceptors and CallAuthenticator called straight (a file of its own: rpc-rules' results stay valid).
      "test/rpc-interceptor-rules.test.ts",
      "test/error-mapping.test.ts",
      "test/request-validation.test.ts",
      "test/field-mask.test.ts",
      "test/bad-input.test.ts",
      "test/method-policies.test.ts",
      "test/rate-limits.test.ts",
      "test/audit.test.ts",
      "test/properties/permissions.test.ts",
    ],
  },
  {
    name: "task-lifecycle",
    mutate: ["src/operations/task-lifecycle.ts"],
    suites: ["test/task-lifecycle.test.ts", "test/operations-worker.test.ts", "test/operations-backoff.test.ts", "test/queue-plans.test.ts"],
  },
  {
    name: "rest",
    mutate: ["src/server/rest/**/*.ts"],
    suites: [
      // Direct tests first (test/vitest.mutate.config.ts runs the suites in this order).
      "test/rest-rules.test.ts",
      // Edges the first run of those left: JSON Lines item by item, errors, drains, clients leaving, refusals (a file of its own: a changed test file reruns every mutant it killed).
      "test/rest-edges.test.ts",
      "test/rest.test.ts",
      "test/rest-query-string.test.ts",
      "test/properties/rest-equivalence.test.ts",
    ],
  },
];

/** The group named by MUTATION_GROUP (set by mutation/run.mjs). */
export function currentGroup() {
  const name = process.env.MUTATION_GROUP;
  const group = groups.find((g) => g.name === name);
  if (!group) throw new Error(`MUTATION_GROUP must be one of ${groups.map((g) => g.name).join(", ")}`);
  return group;
}
