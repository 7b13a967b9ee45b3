import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pinningAvailable } from "./processes/pinning.js";
import { type ServerProcess, startServer } from "./processes/server-process.js";
import { queueMarkdown, runQueueComparison } from "./queue/comparison.js";
import { queueSizes } from "./queue/sizes.js";
import { loadSettings } from "./settings.js";
import { prepare } from "./setup.js";

/**
 * `npm run bench:queue`: Anvil's task queue beside graphile-worker (the
 * PostgreSQL job queue Node teams pick), in one run, on one PostgreSQL
 * database (see queue/comparison.ts; `npm run bench` runs the same as its
 * queue workload). BENCH_QUEUE_JOBS (default 2000), BENCH_QUEUE_CONCURRENCY
 * (8), BENCH_QUEUE_MIXED_SECONDS (10). BENCH_QUEUE_BEFORE=<checkout> also
 * measures Anvil as served from another checkout (say, main before a
 * change), each measurement on both servers back to back.
 */
async function main(): Promise<void> {
  const started = Date.now();
  const log = (line: string) => process.stderr.write(`[queue ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
  const settings = { ...loadSettings(), seedRows: 100 };
  const setup = await prepare(settings, log);
  const servers: Array<{ label: string; server: ServerProcess }> = [];
  try {
    const before = process.env.BENCH_QUEUE_BEFORE;
    if (before) servers.push({ label: "Anvil (before)", server: await startServer("anvil", { env: setup.serverEnv, cwd: before }) });
    servers.push({ label: before ? "Anvil (after)" : "Anvil", server: await startServer("anvil", { env: setup.serverEnv }) });
    const report = await runQueueComparison(setup.serverEnv.DATABASE_URL!, setup.ctx, servers, queueSizes(settings.quick), log);
    const markdown = [
      "# Task queue: Anvil beside graphile-worker",
      "",
      `${new Date(started).toISOString()}; pinning ${pinningAvailable() ? "on" : "off"}.`,
      "",
      queueMarkdown(report),
    ].join("\n");
    const dir = join(import.meta.dirname, "results");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "queue.md"), markdown);
    process.stdout.write(markdown);
  } finally {
    await Promise.all(servers.map((s) => s.server.stop()));
    await setup.teardown();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:queue failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
