import { spawnSync } from "node:child_process";
import { availableParallelism } from "node:os";

/** Cores the bench pins to: the server on one, the load generator on the other. */
export const serverCore = 0;
export const loadCore = 1;

let canPin: boolean | undefined;

/** Whether `taskset` exists and there are two cores to split between server and load. */
export function pinningAvailable(): boolean {
  canPin ??= availableParallelism() >= 2 && spawnSync("taskset", ["-c", "0", "true"]).status === 0;
  return canPin;
}

/**
 * The command line that runs `command args` pinned to `core` with taskset,
 * or unpinned when taskset is missing. taskset execs the command, so the
 * child's pid is the program's own (which the RSS probe relies on).
 */
export function pinned(core: number, command: string, args: readonly string[]): [string, string[]] {
  return pinningAvailable() ? ["taskset", ["-c", String(core), command, ...args]] : [command, [...args]];
}
