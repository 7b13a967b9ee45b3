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
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
  },
});
