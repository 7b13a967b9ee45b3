import { defineConfig } from "vitest/config";

/**
 * The adversarial suite (test/hostile): fuzzing, connection attacks and CPU
 * bounds. One file at a time: each runs a gateway in its own process and
 * measures its event loop and memory, which a second file's load beside it
 * would distort.
 */
export default defineConfig({
  test: {
    include: ["test/hostile/**/*.test.ts"],
    // initdb once per run, not once per embedded gateway (support/pglite-seed.ts).
    globalSetup: ["test/support/pglite-seed.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
  },
});
