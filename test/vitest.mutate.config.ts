import { defineConfig } from "vitest/config";

/**
 * The suites `npm run mutate` runs against each mutant: those of the group
 * being mutated (mutation/groups.mjs, passed by stryker.config.mjs as
 * MUTATION_SUITES). One database (TEST_ONE_DATABASE): PostgreSQL when
 * TEST_DATABASE_URL is set, else the embedded one.
 */
const suites = process.env.MUTATION_SUITES?.split(",") ?? [];

export default defineConfig({
  test: {
    include: suites,
    // MUTATION_RUN: suites leave out their wall-clock bounds (instrumented code is slower).
    env: { TEST_ONE_DATABASE: "1", MUTATION_RUN: "1" },
    // One worker imports the gateway once for all the suites of a mutant's run
    // instead of once per suite: most of a run's cost on a loaded machine.
    isolate: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
