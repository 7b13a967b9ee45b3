import { spawn } from "node:child_process";
import { loadCore, pinned } from "../processes/pinning.js";

/**
 * Runs a Node load worker (bench/load/<script>) pinned to the load core,
 * hands it `input` as JSON in argv, and returns the JSON it prints as its
 * last stdout line. Load runs in its own process so it never shares a core
 * or an event loop with the runner or the server.
 */
export function runWorker<T>(script: string, input: unknown, timeoutMs: number): Promise<T> {
  const [command, args] = pinned(loadCore, process.execPath, ["--import", "tsx", `bench/load/${script}`, JSON.stringify(input)]);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      const last = out.trim().split("\n").pop() ?? "";
      try {
        if (code !== 0) throw new Error(`exit ${code}`);
        resolve(JSON.parse(last) as T);
      } catch (e) {
        reject(new Error(`${script} failed (${String(e)}): ${err || out}`));
      }
    });
  });
}
