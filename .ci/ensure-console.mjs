// Runs before `npm start` and `npm test`: builds the web console (console/)
// into console/dist when anything it is built from is newer than the build,
// so a fresh clone's `npm start` serves GET /console with no extra command.
// console/dist is git-ignored: a build is an artefact, never committed.
import { execSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const built = "console/dist/index.html";
// The console's sources, the generated clients it imports, and the locked dependencies it bundles.
const inputs = ["console/src", "console/index.html", "console/vite.config.ts", "gen/anvil", "package-lock.json"];

function newest(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return readdirSync(path).reduce((m, name) => Math.max(m, newest(join(path, name))), stat.mtimeMs);
}

const stale = !existsSync(built) || inputs.some((p) => newest(p) > statSync(built).mtimeMs);
if (stale) {
  process.stderr.write("building the console (vite build)…\n");
  // Always a production build: run from a test runner, NODE_ENV=test would otherwise bundle React's
  // development build (half again as large, and not what `npm start` serves).
  execSync("npx vite build --config console/vite.config.ts", { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, NODE_ENV: "production" } });
}
