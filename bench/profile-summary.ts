import { readFileSync } from "node:fs";
import { relative } from "node:path";

/** One row of a self-time summary. */
export interface HotFunction {
  readonly name: string;
  /** file:line (relative to the repository when inside it). */
  readonly where: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) time. */
  readonly percent: number;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * The functions that spent the most time on the CPU themselves (not in
 * what they called) in a V8 .cpuprofile, as `node --cpu-prof` writes it.
 * Samples are weighted by their time deltas; `(idle)` is left out of the
 * denominator, so percentages are of the time the process was busy.
 */
export function topSelfTime(file: string, count = 10): { busyMs: number; top: HotFunction[]; byOwner: HotFunction[] } {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, { name: string; where: string; us: number }>();
  const ownerUs = new Map<string, number>();
  let busyUs = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const us = profile.timeDeltas[i] ?? 0;
    if (!node || node.callFrame.functionName === "(idle)") return;
    busyUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    const path = url.startsWith("file://") ? relative(process.cwd(), new URL(url).pathname) : url;
    const where = path ? `${path}:${lineNumber + 1}` : "";
    const key = `${functionName}@${where}`;
    const entry = selfUs.get(key) ?? { name: functionName || "(anonymous)", where, us: 0 };
    entry.us += us;
    selfUs.set(key, entry);
    const owner = ownerOf(path, functionName);
    ownerUs.set(owner, (ownerUs.get(owner) ?? 0) + us);
  });
  const top = [...selfUs.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, count)
    .map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, percent: (100 * e.us) / busyUs }));
  const byOwner = [...ownerUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, us]) => ({ name, where: "", selfMs: us / 1000, percent: (100 * us) / busyUs }));
  return { busyMs: busyUs / 1000, top, byOwner };
}

/** Who a function belongs to: an npm package, a Node internal module, a folder of Anvil, or native code. */
function ownerOf(path: string, functionName: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) return pkg[1]!;
  if (path.startsWith("node:")) return path.replace(/^node:(internal\/)?/, "node:").split("/").slice(0, 2).join("/");
  if (path.startsWith("src/") || path.startsWith("gen/") || path.startsWith("bench/")) return path.split("/").slice(0, 2).join("/");
  return path ? path : `native ${functionName}`;
}

/** The summary as a Markdown table. */
export function hotFunctionsMarkdown(summary: { busyMs: number; top: HotFunction[]; byOwner: HotFunction[] }): string {
  const rows = summary.top.map((f, i) => `| ${i + 1} | \`${f.name}\` | ${f.where || "(native)"} | ${f.selfMs.toFixed(0)} | ${f.percent.toFixed(1)}% |`);
  const owners = summary.byOwner.map((f, i) => `| ${i + 1} | ${f.name} | ${f.selfMs.toFixed(0)} | ${f.percent.toFixed(1)}% |`);
  return [
    `Busy CPU time: ${summary.busyMs.toFixed(0)} ms`,
    "",
    "Top functions by self time:",
    "",
    "| # | function | where | self ms | % of busy |",
    "|--:|---|---|--:|--:|",
    ...rows,
    "",
    "Self time by owner (package, Node module, Anvil folder):",
    "",
    "| # | owner | self ms | % of busy |",
    "|--:|---|--:|--:|",
    ...owners,
    "",
  ].join("\n");
}

// `tsx bench/profile-summary.ts <file.cpuprofile> [count]` prints the table for any profile.
if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: tsx bench/profile-summary.ts <file.cpuprofile> [count]");
  process.stdout.write(hotFunctionsMarkdown(topSelfTime(file, Number(process.argv[3] ?? 10))));
}
