// Property-based fuzzing of every API method over every protocol family,
// against a gateway in its own process (so its event loop and memory are
// measured, not the runner's). Seed and run count are pinned so CI is
// repeatable; `npm run fuzz` runs the same property for longer with new
// seeds. No failure is tolerated: a failure is fixed, not allow-listed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseKinds } from "../support/databases.js";
import { type GatewayProcess, startGatewayProcess } from "../support/gateway-process.js";
import { formatReport, runFuzz } from "./support/fuzz-run.js";

const seed = Number(process.env.FUZZ_SEED ?? 20261129);
const numRuns = Number(process.env.FUZZ_RUNS ?? 1000);

describe.each(databaseKinds)("fuzzing every method over every protocol (%s)", (kind) => {
  let gateway: GatewayProcess;
  beforeAll(async () => {
    gateway = await startGatewayProcess(kind);
  });
  afterAll(async () => {
    await gateway?.close();
  });

  it(`keeps its codes, time, event loop and memory over ${numRuns} generated requests`, { timeout: 150_000 }, async () => {
    const report = await runFuzz(gateway, {
      seed,
      numRuns,
      bounds: {
        // Generous for a shared two-core machine; a request near it is a bug anyway.
        responseMs: 5_000,
        // PGlite runs its queries on the gateway's thread, so only PostgreSQL can meet the bound.
        checkEventLoop: kind === "postgres",
        rssGrowthBytes: 150 * 2 ** 20,
      },
    });
    console.log(`[${kind}] ${formatReport(report)}`);
    expect(report.failure, formatReport(report)).toBeUndefined();
    expect(gateway.alive()).toBe(true);
    expect(report.requests).toBeGreaterThanOrEqual(numRuns);
  });
});
