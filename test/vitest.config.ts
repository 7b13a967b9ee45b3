import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The adversarial suite runs on its own afterwards (vitest.hostile.config.ts):
    // its gateways in child processes saturate both cores, which would turn the
    // wall-clock bounds of the suites running beside it into noise.
    exclude: ["test/hostile/**", "**/node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two cores: two files at a time keeps servers and databases responsive.
    maxWorkers: 2,
  },
});
