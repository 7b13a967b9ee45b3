import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * The suites `npm run mutate` runs against each mutant: those of the group
 * being mutated (mutation/groups.mjs, passed by stryker.config.mjs as
 * MUTATION_SUITES). One database (TEST_ONE_DATABASE): PostgreSQL when
 * TEST_DATABASE_URL is set, else the embedded one.
 */
const suites = process.env.MUTATION_SUITES?.split(",") ?? [];

/**
 * Runs a mutant's suites in the order the group lists them, its direct tests
 * first. Stryker stops a mutant's run at the first failing test; vitest's own
 * order puts the slowest files first, so a mutant that a direct test kills in
 * milliseconds waited for every end-to-end suite that reaches it to start
 * its gateway and run.
 */
class GroupOrder extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification) => {
      const index = suites.findIndex((suite) => file.moduleId.endsWith(`/${suite}`));
      return index < 0 ? suites.length : index;
    };
    return [...files].sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    include: suites,
    // MUTATION_RUN: suites leave out their wall-clock bounds (instrumented code is slower).
    env: { TEST_ONE_DATABASE: "1", MUTATION_RUN: "1" },
    // initdb once per run: the embedded databases that direct tests open (a
    // PGlitePool's, the migrator's on a fresh database) start from its copy.
    globalSetup: ["test/support/pglite-seed.ts"],
    // One worker imports the gateway once for all the suites of a mutant's run
    // instead of once per suite: most of a run's cost on a loaded machine.
    isolate: false,
    sequence: { sequencer: GroupOrder },
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
