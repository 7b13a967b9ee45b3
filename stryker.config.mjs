// @ts-check
import { currentGroup } from "./mutation/groups.mjs";

// One group of mutation/groups.mjs per run (MUTATION_GROUP, set by
// mutation/run.mjs); test/vitest.mutate.config.ts reads its suites from here.
const group = currentGroup();
process.env.MUTATION_SUITES = group.suites.join(",");

/**
 * `npm run mutate`: StrykerJS over the core where a silent regression hurts
 * most. Not part of `npm test` (it takes long on 2 cores). Incremental: the
 * committed mutation/incremental/<group>.json lets a run retest only the
 * mutants whose code or covering tests changed; `npm run mutate -- --force`
 * retests all. mutation/summarize.mjs writes the per-folder scores to
 * mutation/baseline.md, mutation/baseline.json and the README.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: "vitest",
  plugins: ["@stryker-mutator/vitest-runner"],
  vitest: { configFile: "test/vitest.mutate.config.ts", related: false },
  mutate: group.mutate,
  coverageAnalysis: "perTest",
  // Code that runs while a suite starts its gateway (beforeAll) is "static":
  // each such mutant would rerun every suite, minutes each on 2 cores. They are
  // reported as ignored; the score counts the mutants tests reach.
  ignoreStatic: true,
  concurrency: 2,
  timeoutMS: 30_000,
  timeoutFactor: 2,
  incremental: true,
  incrementalFile: `mutation/incremental/${group.name}.json`,
  reporters: ["clear-text", "progress", "json"],
  jsonReporter: { fileName: `reports/mutation/${group.name}.json` },
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true },
  tempDirName: ".stryker-tmp",
  // Stryker rewrites the tsconfig's extends/references for the sandbox through
  // typescript's JS API, which TypeScript 7 no longer has; ours has neither, so
  // point it at no file and the sandbox keeps tsconfig.json as it is.
  tsconfigFile: "tsconfig.stryker-none.json",
  ignorePatterns: ["bench/results", "reports", "test-results", ".anvil", "dist"],
  cleanTempDir: true,
};
