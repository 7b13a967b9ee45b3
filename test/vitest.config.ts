import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The adversarial suite runs on its own afterwards (vitest.hostile.config.ts):
    // its gateways in child processes saturate both cores, which would turn the
    // wall-clock bounds of the suites running beside it into noise.
    exclude: ["test/hostile/**", "**/node_modules/**"],
    // initdb once per run, not once per embedded gateway (support/pglite-seed.ts).
    globalSetup: ["test/support/pglite-seed.ts"],
    testTimeout: 60_000,
    // A beforeAll starts one or more gateways. At load ~20 on the shared 2-core machine an embedded one took
    // 13 s even from the seed (64 s for PGlite's initdb alone without it, past the old 60 s), and a few files
    // start several: a bound that only ever decides how a failure reads, not how long a green run takes.
    hookTimeout: 180_000,
    pool: "forks",
    // Two cores: two files at a time keeps servers and databases responsive.
    maxWorkers: 2,
  },
});
