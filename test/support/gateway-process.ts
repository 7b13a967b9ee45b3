import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createTestDatabase, type DatabaseKind, type TestDatabase } from "./databases.js";
import { mintToken, type MintOptions, type TestKey, testKeys, testLimitEnv } from "./tokens.js";

/** Questions the parent asks a gateway child over IPC. */
export type ChildRequest = { type: "stats" | "reset" | "gc" | "resetPeak"; id: number };

/** The child's answers. */
export type ChildReply =
  | { type: "ready"; port: number }
  | { type: "reset" | "gc"; id: number }
  | { type: "resetPeak"; id: number; reset: boolean }
  | {
      type: "stats";
      id: number;
      maxDelayMs: number;
      p99DelayMs: number;
      rssBytes: number;
      peakRssBytes: number;
      cpuMicros: number;
      heapUsedBytes: number;
    };

/** What the child's process reports about itself. */
export interface GatewayStats {
  /** Longest time the event loop was busy at once since the last reset, in ms. */
  readonly maxDelayMs: number;
  readonly p99DelayMs: number;
  readonly rssBytes: number;
  /** Highest RSS the process had (the kernel's high-water mark; not reset by reset(), only by resetPeak()). */
  readonly peakRssBytes: number;
  /** CPU time (user + system) the process has used since it started, in µs. */
  readonly cpuMicros: number;
  readonly heapUsedBytes: number;
}

/** A real gateway in a child process, on a free loopback port with its own fresh database. */
export interface GatewayProcess {
  readonly kind: DatabaseKind;
  readonly pid: number;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string;
  readonly keys: Record<string, TestKey>;
  /** The keys file the child reads. */
  readonly keysFile: string;
  /** A valid token for a key (default `acme-admin`). */
  token(keyId?: string, options?: MintOptions): Promise<string>;
  /** The child's event-loop delay and memory since the last reset(). */
  stats(): Promise<GatewayStats>;
  /** Starts a new event-loop measurement window. */
  reset(): Promise<void>;
  /** Runs a full garbage collection in the child (it runs with --expose-gc). */
  gc(): Promise<void>;
  /**
   * Lowers the kernel's RSS high-water mark to the RSS of now (Linux:
   * `/proc/self/clear_refs`), so peakRssBytes then says how high memory went
   * during what follows; false where the kernel does not allow it.
   */
  resetPeak(): Promise<boolean>;
  /** Whether the child is still running. */
  alive(): boolean;
  /** Sends the child a signal (SIGTERM starts its drain, as in main.ts). */
  kill(signal: NodeJS.Signals): void;
  /** Resolves once the child has exited: its exit code, or the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last few KiB the child wrote to stderr (why it died, when it did). */
  stderr(): string;
  /** Stops the child (SIGTERM, then SIGKILL) and drops its database. */
  close(): Promise<void>;
}

/** Options of startGatewayProcess. */
export interface GatewayProcessOptions {
  /** Extra environment for the child's loadConfig. */
  readonly env?: Record<string, string>;
  /** Serve this database (not dropped on close) instead of a fresh one: several instances, one database. */
  readonly database?: TestDatabase;
  /** Trust these keys instead of fresh ones, so one token works on several instances. */
  readonly keys?: TestKey[];
}

const childScript = fileURLToPath(new URL("./gateway-child.ts", import.meta.url));

/**
 * Starts a gateway in a process of its own, built as main.ts builds it, so
 * a test can measure the gateway's event loop and memory without measuring
 * itself. On PGlite the embedded database runs inside the child too (and on
 * its event loop), so event-loop bounds are only meaningful on PostgreSQL.
 */
export async function startGatewayProcess(kind: DatabaseKind, options: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), "anvil-child-"));
  const keys = options.keys ?? testKeys();
  const keysFile = join(dir, "service-accounts.json");
  writeFileSync(keysFile, JSON.stringify({ keys }));
  const database: TestDatabase = options.database ?? (await createTestDatabase(kind));
  const child = fork(childScript, [], {
    // GATEWAY_CPU_PROF=<dir> writes the child's CPU profile there when it exits (`--cpu-prof` is refused in NODE_OPTIONS).
    execArgv: ["--import", "tsx", "--expose-gc", ...(process.env.GATEWAY_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.GATEWAY_CPU_PROF}`] : [])],
    env: {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      ANVIL_KEYS_FILE: keysFile,
      ANVIL_DATA_DIR: "memory://",
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
      // No pre-stop delay unless a test asks for one: close() should not wait for load balancers that are not there.
      ANVIL_DRAIN_DELAY: "0",
      ANVIL_SHUTDOWN_TIMEOUT: "1s",
      ...testLimitEnv,
      ...(database.url ? { DATABASE_URL: database.url } : {}),
      ...options.env,
    },
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  // The child is what a test times: it runs at normal priority even when the
  // runner is niced (as the suites on a shared machine are), so that other
  // niced work on the machine does not stretch what it measures.
  try {
    setPriority(child.pid!, 0);
  } catch {
    // Not permitted (no CAP_SYS_NICE): the child keeps the runner's priority.
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  // Without a listener, a failed send to an exiting child (EPIPE) would be thrown by the ChildProcess itself.
  child.on("error", () => {});
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-8000);
  });
  const cleanUp = async () => {
    if (!options.database) await database.drop();
    rmSync(dir, { recursive: true, force: true });
  };
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway child did not start within 60 s\n${stderr}`)), 60_000);
      child.on("message", (m: ChildReply) => {
        if (m.type !== "ready") return;
        clearTimeout(timer);
        resolve(m.port);
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`gateway child exited with ${code} before it was ready\n${stderr}`));
      });
    });
  } catch (err) {
    child.kill("SIGKILL");
    await cleanUp();
    throw err;
  }
  let nextId = 1;
  const ask = <T extends ChildReply["type"]>(type: ChildRequest["type"] & T) =>
    new Promise<Extract<ChildReply, { type: T }>>((resolve, reject) => {
      const id = nextId++;
      const onMessage = (m: ChildReply) => {
        if (m.type !== type || !("id" in m) || m.id !== id) return;
        child.off("message", onMessage);
        child.off("exit", onExit);
        resolve(m as Extract<ChildReply, { type: T }>);
      };
      const onExit = () => {
        child.off("message", onMessage);
        reject(new Error(`gateway child exited\n${stderr}`));
      };
      child.on("message", onMessage);
      child.once("exit", onExit);
      // A child that is exiting closes its IPC channel: the send fails (EPIPE) instead of the process crashing on it.
      child.send({ type, id } satisfies ChildRequest, (err) => {
        if (err === null) return;
        child.off("message", onMessage);
        child.off("exit", onExit);
        reject(new Error(`gateway child unreachable: ${err.message}\n${stderr}`));
      });
    });
  const byId = Object.fromEntries(keys.map((k) => [k.key_id, k]));
  return {
    kind,
    pid: child.pid!,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    keys: byId,
    keysFile,
    token: (keyId = "acme-admin", o) => mintToken(byId[keyId]!, o),
    stats: async () => {
      const { maxDelayMs, p99DelayMs, rssBytes, peakRssBytes, cpuMicros, heapUsedBytes } = await ask("stats");
      return { maxDelayMs, p99DelayMs, rssBytes, peakRssBytes, cpuMicros, heapUsedBytes };
    },
    reset: async () => void (await ask("reset")),
    gc: async () => void (await ask("gc")),
    resetPeak: async () => (await ask("resetPeak")).reset,
    alive: () => child.exitCode === null && child.signalCode === null,
    kill: (signal) => void child.kill(signal),
    exited,
    stderr: () => stderr,
    close: async () => {
      await stopChild(child);
      await cleanUp();
    },
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}
