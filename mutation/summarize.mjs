// `node mutation/summarize.mjs <group>…` (run by mutation/run.mjs after each
// Stryker run): reads reports/mutation/<group>.json and writes the group's
// mutation score to mutation/baseline.json, mutation/baseline.md and the
// README's table, which are committed: a change that lowers a score shows in
// their diff, and this script names the folder whose score fell. Groups not
// named keep their previous figures.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { transformSync } from "esbuild";
import { groups } from "./groups.mjs";

const baselineJson = "mutation/baseline.json";
const baselineMd = "mutation/baseline.md";
const historyMark = "## History";
const readme = "README.md";
const readmeMarks = ["<!-- mutation-baseline:start -->\n", "<!-- mutation-baseline:end -->"];
const statuses = ["Killed", "Timeout", "Survived", "NoCoverage", "Ignored", "RuntimeError", "CompileError"];

const previous = existsSync(baselineJson) ? JSON.parse(readFileSync(baselineJson, "utf8")) : { groups: {} };
const figures = { ...previous.groups };
for (const name of process.argv.slice(2)) {
  const report = JSON.parse(readFileSync(`reports/mutation/${name}.json`, "utf8"));
  const counts = Object.fromEntries(statuses.map((s) => [s, 0]));
  const files = Object.values(report.files);
  for (const file of files) for (const m of file.mutants) counts[m.status] = (counts[m.status] ?? 0) + 1;
  const detected = counts.Killed + counts.Timeout;
  const valid = detected + counts.Survived + counts.NoCoverage;
  figures[name] = {
    files: files.length,
    mutants: Object.values(counts).reduce((a, b) => a + b, 0),
    ...counts,
    // Stryker's mutation score: detected / (detected + survived + no coverage); ignored mutants do not count.
    score: valid === 0 ? null : Math.round((10_000 * detected) / valid) / 100,
    measured: new Date().toISOString().slice(0, 10),
    // A run narrowed with --mutate keeps the results of the files measured
    // before it (incremental), so its report holds every file measured so far:
    // the table names them while they are not yet all of the group's.
    ...(process.env.MUTATION_NARROWED ? measuredOnly(name, Object.keys(report.files)) : {}),
  };
  const before = previous.groups[name]?.score;
  if (before != null && figures[name].score != null && figures[name].score < before) {
    process.stderr.write(`mutation score fell in ${name}: ${before}% → ${figures[name].score}%\n`);
  }
}

const ordered = Object.fromEntries(groups.filter((g) => figures[g.name]).map((g) => [g.name, figures[g.name]]));
const table = markdown(ordered);
writeFileSync(baselineJson, `${JSON.stringify({ groups: ordered }, null, 2)}\n`);
// What follows the table's "## History" heading is kept: before/after figures
// written by hand when a run's tests change a score.
const history = existsSync(baselineMd) ? readFileSync(baselineMd, "utf8").split(historyMark)[1] : undefined;
writeFileSync(baselineMd, `# Mutation scores (\`npm run mutate\`)\n\n${table}${history === undefined ? "" : `\n${historyMark}${history}`}`);
const text = readFileSync(readme, "utf8");
const [start, end] = readmeMarks.map((mark) => text.indexOf(mark));
if (start >= 0 && end > start) {
  writeFileSync(readme, text.slice(0, start + readmeMarks[0].length) + table + text.slice(end));
}
process.stdout.write(table);

/** `{ onlyFiles }` naming the measured files when some of the group's files are not among them, else nothing. */
function measuredOnly(name, measured) {
  const patterns = groups.find((g) => g.name === name).mutate;
  const [include, exclude] = [patterns.filter((p) => !p.startsWith("!")), patterns.filter((p) => p.startsWith("!")).map((p) => p.slice(1))].map(
    (globs) => globs.map(globPattern),
  );
  const inGroup = execFileSync("git", ["ls-files", "src"], { encoding: "utf8" })
    .split("\n")
    .filter((file) => include.some((re) => re.test(file)) && !exclude.some((re) => re.test(file)));
  // A file of type declarations only compiles to nothing: there is nothing in it to mutate.
  const missing = inGroup.filter((file) => !measured.includes(file) && !typesOnly(file));
  return missing.length === 0 ? {} : { onlyFiles: [...measured].sort().join(",") };
}

/** Whether `file` holds nothing that runs (its JavaScript, as esbuild strips the types, is empty). */
function typesOnly(file) {
  return transformSync(readFileSync(file, "utf8"), { loader: "ts", format: "esm", legalComments: "none" }).code.trim() === "";
}

/** A RegExp for a mutate glob as groups.mjs writes them (`**` any folders, `*` within one). */
function globPattern(glob) {
  const source = glob
    .split(/(\*\*\/|\*\*|\*)/)
    .map((part) => ({ "**/": "(?:.*/)?", "**": ".*", "*": "[^/]*" })[part] ?? part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join("");
  return new RegExp(`^${source}$`);
}

function markdown(all) {
  const folder = (name) => groups.find((g) => g.name === name).mutate.map((m) => `\`${m}\``).join(" ");
  const rows = Object.entries(all).map(
    ([name, f]) =>
      `| ${folder(name)}${f.onlyFiles ? ` (only ${f.onlyFiles.split(",").map((m) => `\`${m}\``).join(", ")})` : ""} | ${f.score == null ? "–" : `${f.score}%`} | ${f.mutants} | ${f.Killed} | ${f.Timeout} | ${f.Survived} | ${f.NoCoverage} | ${f.Ignored} | ${f.measured} |`,
  );
  return [
    "| mutated | score | mutants | killed | timed out | survived | no coverage | ignored (static) | measured |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ...rows,
    "",
  ].join("\n");
}
