import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { hotFunctionsMarkdown, topSelfTime } from "./profile-summary.js";
import { type ServerProcess, startServer } from "./processes/server-process.js";
import { anvilClients, anvilFanOut, anvilStreamDrain, queueRuns } from "./queue/anvil.js";
import { queueSizes } from "./queue/sizes.js";
import { loadSettings } from "./settings.js";
import { prepare } from "./setup.js";

/**
 * `npm run bench:queue:profile`: where a drain's time goes. Runs Anvil under
 * `node --cpu-prof` while streaming workers drain BENCH_QUEUE_JOBS one-step
 * runs (then a few 100-way fan-outs), and reports per task: the gateway's
 * CPU time and its hottest functions, the statements it sent (from
 * /metrics: count and time by statement name), and what the database's
 * sessions waited on (pg_stat_activity sampled every 5 ms: lock waits show
 * as Lock/tuple or Lock/transactionid). BENCH_QUEUE_CHECKOUT=<dir> profiles
 * the server of another checkout (say, main before a change).
 */
async function main(): Promise<void> {
  const log = (line: string) => process.stderr.write(`[queue-profile] ${line}\n`);
  const settings = { ...loadSettings(), seedRows: 100 };
  const sizes = queueSizes(settings.quick);
  const dir = join(import.meta.dirname, "results", `queue-profile-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  mkdirSync(dir, { recursive: true });
  const setup = await prepare(settings, log);
  let server: ServerProcess | undefined;
  const lines: string[] = [];
  try {
    const checkout = process.env.BENCH_QUEUE_CHECKOUT;
    server = await startServer("anvil", { env: setup.serverEnv, nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${dir}`], ...(checkout && { cwd: checkout }) });
    const c = anvilClients(server.baseUrl, setup.ctx.token, setup.ctx.workflowId, sizes);
    const db = new pg.Client({ connectionString: setup.serverEnv.DATABASE_URL });
    await db.connect();
    try {
      for (const [what, run, tasks] of [
        ["stream drain", () => anvilStreamDrain(c, true), sizes.jobs],
        ["fan-out", () => anvilFanOut(c), 101 * sizes.fanOutSamples],
      ] as const) {
        log(what);
        if (what === "stream drain") await queueRuns(c);
        const cpu0 = cpuMs(server.pid);
        const before = await statementCounts(server.baseUrl);
        const waits = sampleWaits(db);
        const figure = await run();
        const waited = await waits.stop();
        const after = await statementCounts(server.baseUrl);
        const cpu = (cpuMs(server.pid) - cpu0) / tasks;
        lines.push(`## ${what}: ${figure.toFixed(1)} (${what === "fan-out" ? "ms, p50" : "tasks/s"}); gateway CPU ${cpu.toFixed(2)} ms per task`, "", "| statement | per task | ms each |", "|---|--:|--:|");
        const rows = [...after].map(([name, a]) => ({ name, n: a.n - (before.get(name)?.n ?? 0), s: a.s - (before.get(name)?.s ?? 0) })).filter((r) => r.n > 0);
        rows.sort((x, y) => y.n - x.n);
        for (const r of rows) lines.push(`| ${r.name} | ${(r.n / tasks).toFixed(2)} | ${((r.s / r.n) * 1000).toFixed(2)} |`);
        lines.push(`| all | ${(rows.reduce((n, r) => n + r.n, 0) / tasks).toFixed(2)} | |`, "", `Database sessions (samples every 5 ms; per sample): ${waited}`, "");
      }
    } finally {
      await db.end();
    }
  } finally {
    await server?.stop();
    await setup.teardown();
  }
  const profiles = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  const main = profiles.map((f) => join(dir, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (main) lines.push(`## Gateway CPU (${main})`, "", hotFunctionsMarkdown(topSelfTime(main, 15)));
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** CPU time (user + system) the process has used, in ms, from /proc. */
function cpuMs(pid: number): number {
  // Fields after the command name: utime and stime are the 12th and 13th, in clock ticks (100 a second on Linux).
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Statement counts and total seconds by name, from Anvil's /metrics. */
async function statementCounts(baseUrl: string): Promise<Map<string, { n: number; s: number }>> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const out = new Map<string, { n: number; s: number }>();
  for (const m of text.matchAll(/^anvil_db_statement_seconds_(count|sum)\{([^}]*)\} ([0-9.e+-]+)$/gm)) {
    const name = /statement="([^"]*)"/.exec(m[2]!)?.[1] ?? "?";
    const entry = out.get(name) ?? { n: 0, s: 0 };
    if (m[1] === "count") entry.n += Number(m[3]);
    else entry.s += Number(m[3]);
    out.set(name, entry);
  }
  return out;
}

/** Samples the bench database's active sessions until stop(): what they were doing, per sample on average. */
function sampleWaits(db: pg.Client): { stop(): Promise<string> } {
  const tally = new Map<string, number>();
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const r = await db.query<{ what: string; n: string }>(
        `select coalesce(wait_event_type || '/' || wait_event, 'on CPU') as what, count(*) as n from pg_stat_activity
         where datname = current_database() and state = 'active' and pid <> pg_backend_pid() group by 1`,
      );
      samples++;
      for (const row of r.rows) tally.set(row.what, (tally.get(row.what) ?? 0) + Number(row.n));
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return [...tally].sort((a, b) => b[1] - a[1]).map(([what, n]) => `${what} ${(n / samples).toFixed(2)}`).join(", ");
    },
  };
}

main().catch((err: unknown) => {
  process.stderr.write(`queue-profile failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
