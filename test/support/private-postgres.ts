import { execFile, execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Where Debian's PostgreSQL 15 server binaries live. */
export const postgresBin = "/usr/lib/postgresql/15/bin";

/** Whether a private cluster can be started here (the binaries are installed). */
export const privatePostgresAvailable = existsSync(join(postgresBin, "pg_ctl")) && existsSync(join(postgresBin, "initdb"));

/**
 * A PostgreSQL cluster owned by one test, so that test may stop, restart and
 * destroy it. The shared server at 127.0.0.1:5432 serves other test files at
 * the same time and must never be touched that way.
 */
export interface PrivatePostgres {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth). */
  readonly url: string;
  /** Fast shutdown: sessions are terminated, in-flight statements fail. */
  stop(): Promise<void>;
  /** Starts the stopped cluster and waits until it accepts connections. */
  start(): Promise<void>;
  /** Fast shutdown then start, as an operator's restart does. */
  restart(): Promise<void>;
  /** Stops the cluster and deletes its files. */
  destroy(): Promise<void>;
}

/**
 * initdb's a fresh cluster in a temporary directory and starts it on a free
 * loopback port with trust auth. Tests run as root and initdb refuses root,
 * so the directory belongs to `postgres` and the tools run as that user.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = mkdtempSync(join(tmpdir(), "anvil-pg-"));
  const postgresUid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
  const postgresGid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
  chownSync(dir, postgresUid, postgresGid);
  const data = join(dir, "data");
  const logFile = join(dir, "server.log");
  const asPostgres = (tool: string, args: string[]) =>
    run("runuser", ["-u", "postgres", "--", join(postgresBin, tool), ...args], { timeout: 60_000 });

  await asPostgres("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"]);
  const port = await freePort();
  // The socket directory is private too, so nothing collides with the shared server's.
  const serverOptions = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    `-c unix_socket_directories=${dir}`,
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
    "-c shared_buffers=16MB",
    "-c max_connections=50",
  ].join(" ");
  const ctl = (...args: string[]) => asPostgres("pg_ctl", ["-D", data, "-l", logFile, "-w", "-t", "60", ...args]);
  const start = async () => {
    await ctl("start", "-o", serverOptions);
  };
  const stop = async () => {
    await ctl("stop", "-m", "fast");
  };
  let destroyed = false;
  // A crashed test must not leave a server running behind it.
  const onExit = () => {
    try {
      execFileSync("runuser", ["-u", "postgres", "--", join(postgresBin, "pg_ctl"), "-D", data, "stop", "-m", "immediate"], { stdio: "ignore" });
    } catch {
      // Already stopped.
    }
  };
  process.once("exit", onExit);

  await start();
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop,
    start,
    restart: async () => {
      await ctl("restart", "-m", "fast", "-o", serverOptions);
    },
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      process.off("exit", onExit);
      await ctl("stop", "-m", "immediate").catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A port nothing listens on right now (the kernel picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
