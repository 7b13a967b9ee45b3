import { defineConfig } from "vitest/config";

/**
 * The suites `npm run mutate` (stryker.config.mjs) runs against each mutant.
 * Only suites whose gateway runs inside the vitest process: Stryker sees which
 * test reaches which mutant only there, so suites that start the gateway as a
 * child process (test/support/gateway-process.ts) would kill nothing and cost
 * minutes. One database (TEST_ONE_DATABASE): PostgreSQL when TEST_DATABASE_URL
 * is set, else the embedded one.
 */
export const mutationSuites = [
  // src/auth, src/rpc: credentials, roles, permissions, error mapping, validation.
  "test/auth.test.ts",
  "test/apikeys.test.ts",
  "test/oidc.test.ts",
  "test/method-policies.test.ts",
  "test/error-mapping.test.ts",
  "test/properties/permissions.test.ts",
  // src/db: the unit of work, migrations, keyset pages, idempotency.
  "test/unit-of-work.test.ts",
  "test/migrations.test.ts",
  "test/properties/idempotency.test.ts",
  // The repositories: tenant scoping and every resource's reads and writes.
  "test/properties/tenant-isolation.test.ts",
];

export default defineConfig({
  test: {
    include: mutationSuites,
    env: { TEST_ONE_DATABASE: "1" },
    // One worker imports the gateway once for all the suites of a mutant's run
    // instead of once per suite: most of a run's cost on a loaded machine.
    isolate: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
