// Reads the report of the last `stryker run` (reports/mutation/mutation.json)
// and writes the mutation score per scoped folder to mutation/baseline.json,
// mutation/baseline.md and the README's table, which are committed: a change that lowers a score shows
// in their diff, and this script names the folders whose score fell.
// Folders the run did not mutate (a run narrowed with --mutate) keep their
// previous figures.
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const reportFile = "reports/mutation/mutation.json";
const baselineJson = "mutation/baseline.json";
const baselineMd = "mutation/baseline.md";
const readme = "README.md";
const readmeMarks = ["<!-- mutation-baseline:start -->\n", "<!-- mutation-baseline:end -->"];

/** The scoped folders, as the README names them; a file may count in two (src/db/idempotency.repository.ts). */
const groups = [
  { name: "src/db/", test: (f) => f.startsWith("src/db/") },
  { name: "src/auth/", test: (f) => f.startsWith("src/auth/") },
  { name: "*.repository.ts", test: (f) => f.endsWith(".repository.ts") },
  { name: "src/rpc/", test: (f) => f.startsWith("src/rpc/") },
  { name: "src/operations/task-lifecycle.ts", test: (f) => f === "src/operations/task-lifecycle.ts" },
  { name: "src/server/rest/", test: (f) => f.startsWith("src/server/rest/") },
];
const statuses = ["Killed", "Timeout", "Survived", "NoCoverage", "Ignored", "RuntimeError", "CompileError"];

const report = JSON.parse(readFileSync(reportFile, "utf8"));
const previous = existsSync(baselineJson) ? JSON.parse(readFileSync(baselineJson, "utf8")) : { folders: {} };
const files = Object.entries(report.files).map(([name, file]) => [relative(name), file]);

const folders = {};
for (const group of groups) {
  const mine = files.filter(([name]) => group.test(name));
  if (mine.length === 0) {
    if (previous.folders[group.name]) folders[group.name] = previous.folders[group.name];
    continue;
  }
  const counts = Object.fromEntries(statuses.map((s) => [s, 0]));
  for (const [, file] of mine) for (const m of file.mutants) counts[m.status] = (counts[m.status] ?? 0) + 1;
  const detected = counts.Killed + counts.Timeout;
  const valid = detected + counts.Survived + counts.NoCoverage;
  folders[group.name] = {
    files: mine.length,
    mutants: Object.values(counts).reduce((a, b) => a + b, 0),
    ...counts,
    // Stryker's "mutation score": detected / (detected + survived + no coverage); ignored mutants do not count.
    score: valid === 0 ? null : round((100 * detected) / valid),
    measuredAt: new Date().toISOString().slice(0, 10),
  };
}

const fell = Object.entries(folders).filter(([name, f]) => {
  const before = previous.folders[name]?.score;
  return before != null && f.score != null && f.score < before;
});
writeFileSync(baselineJson, `${JSON.stringify({ folders }, null, 2)}\n`);
writeFileSync(baselineMd, markdown(folders));
const text = readFileSync(readme, "utf8");
const [start, end] = readmeMarks.map((mark) => text.indexOf(mark));
if (start >= 0 && end > start) {
  writeFileSync(readme, text.slice(0, start + readmeMarks[0].length) + markdown(folders) + text.slice(end));
}
process.stdout.write(markdown(folders));
for (const [name, f] of fell) process.stderr.write(`mutation score fell in ${name}: ${previous.folders[name].score}% → ${f.score}%\n`);

function markdown(all) {
  const rows = Object.entries(all).map(
    ([name, f]) =>
      `| \`${name}\` | ${f.score == null ? "–" : `${f.score}%`} | ${f.mutants} | ${f.Killed} | ${f.Timeout} | ${f.Survived} | ${f.NoCoverage} | ${f.Ignored} | ${f.measuredAt} |`,
  );
  return [
    "| folder | score | mutants | killed | timed out | survived | no coverage | ignored (static) | measured |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ...rows,
    "",
  ].join("\n");
}

function relative(name) {
  const cwd = `${process.cwd()}/`;
  return name.startsWith(cwd) ? name.slice(cwd.length) : name;
}

function round(n) {
  return Math.round(n * 100) / 100;
}
