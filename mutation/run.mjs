// `npm run mutate [-- <group>…] [--force] [--mutate <files>]`: runs Stryker
// once per group of mutation/groups.mjs (all of them by default), each with its
// own suites, report and incremental file, then writes the per-folder scores
// (mutation/summarize.mjs). Stryker's own options pass through: --force
// retests every mutant, --mutate narrows a group's run to some of its files
// (the baseline then says so).
import { spawnSync } from "node:child_process";
import { groups } from "./groups.mjs";

const args = process.argv.slice(2);
const isGroup = (a) => groups.some((g) => g.name === a);
const named = args.filter(isGroup);
const passThrough = args.filter((a) => !isGroup(a));
const narrowed = passThrough[passThrough.indexOf("--mutate") + 1];
const chosen = named.length > 0 ? groups.filter((g) => named.includes(g.name)) : groups;

let failed = false;
for (const group of chosen) {
  process.stdout.write(`\n== mutation group ${group.name}: ${group.mutate.join(" ")}\n`);
  const started = Date.now();
  const run = spawnSync("npx", ["stryker", "run", ...passThrough], {
    stdio: "inherit",
    env: { ...process.env, MUTATION_GROUP: group.name },
  });
  process.stdout.write(`== ${group.name}: ${Math.round((Date.now() - started) / 60_000)} min\n`);
  if (run.status !== 0) failed = true;
  else {
    spawnSync("node", ["mutation/summarize.mjs", group.name], {
      stdio: "inherit",
      env: { ...process.env, ...(passThrough.includes("--mutate") ? { MUTATION_NARROWED: narrowed } : {}) },
    });
  }
}
process.exit(failed ? 1 : 0);
