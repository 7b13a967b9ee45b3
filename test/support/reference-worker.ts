import { type ChildProcess, spawn } from "node:child_process";
import { until } from "./operations.js";

/** The reference worker (`npm run worker`, src/cli/worker.ts) running as its own process. */
export interface ReferenceWorker {
  readonly child: ChildProcess;
  /** Everything it printed so far, stdout and stderr. */
  readonly output: string[];
  /** Stops it as an operator would (SIGTERM: no more claims, the task in hand finished) and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Starts the reference worker against the gateway at `baseUrl` with `token`,
 * claiming `kinds`; resolves once it says it is claiming.
 */
export async function startReferenceWorker(baseUrl: string, token: string, kinds = "demo,demo-fail", extraArgs: readonly string[] = []): Promise<ReferenceWorker> {
  // Node itself with tsx's loader (not npx): signals reach the worker, not a wrapper.
  const args = ["--import", "tsx", "src/cli/worker.ts", "--url", baseUrl, "--token", token, "--kinds", kinds, "--lease", "5", ...extraArgs];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  child.stdout!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  };
  try {
    await until(() => output.join("").includes("claiming"), 30_000, "the worker to start");
  } catch (err) {
    await stop();
    throw new Error(`the reference worker did not start: ${output.join("")}`, { cause: err });
  }
  return { child, output, stop };
}
