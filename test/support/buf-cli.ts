import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: where buf.yaml (the Buf workspace) lives. */
export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

/** The `buf` binary the @bufbuild/buf dev dependency installs, so tests use the pinned version, offline. */
export const bufBin = join(repoRoot, "node_modules/.bin/buf");

/** Exit code and output of one command. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `buf <args>` in `cwd` and resolves with its exit status and output
 * whatever the status (the tests assert on failures too). A hung buf is
 * killed after `timeoutMs` and the promise rejects, so a test can never wait
 * forever on it.
 */
export function runBuf(args: readonly string[], cwd: string = repoRoot, timeoutMs = 30_000): Promise<CommandResult> {
  return new Promise((done, fail) => {
    execFile(bufBin, args, { cwd, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && err.killed) return fail(new Error(`buf ${args.join(" ")} timed out after ${timeoutMs} ms\n${stderr}`));
      if (err && typeof err.code !== "number") return fail(err);
      done({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

/**
 * buf.yaml's second module, .proto-deps/, holds the google.api / google.rpc
 * protos that users.proto imports. It is git-ignored and filled by
 * `npm run proto:deps` (which `npm test` runs first); when a test file is
 * run on its own in a fresh clone it may be missing, so fill it the same way.
 */
export async function ensureProtoDeps(): Promise<void> {
  const filled = [".proto-deps/google/api/annotations.proto", ".proto-deps/buf/validate/validate.proto"];
  if (filled.every((f) => existsSync(join(repoRoot, f)))) return;
  await new Promise<void>((done, fail) => {
    execFile(process.execPath, [".ci/proto-deps.mjs"], { cwd: repoRoot, timeout: 30_000 }, (err) => (err ? fail(err) : done()));
  });
}
