// Runs before `npm start` and `npm test`: installs the locked dependencies
// when node_modules is missing or older than package-lock.json, so each of
// the README's two commands works on a fresh clone by itself.
import { execSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";

const marker = "node_modules/.package-lock.json";
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync("package-lock.json").mtimeMs;
if (stale) {
  process.stderr.write("installing dependencies (npm ci)…\n");
  execSync("npm ci --no-audit --no-fund", { stdio: ["ignore", "inherit", "inherit"] });
}
