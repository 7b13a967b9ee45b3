/** A started bench server: how to stop it cleanly. */
export interface Started {
  close(): Promise<void>;
}

/**
 * The shared main of every bench server: takes the port from argv, starts,
 * prints `READY <port>` for the runner, and on SIGTERM/SIGINT closes and
 * exits normally — a normal exit is what makes `node --cpu-prof` write its
 * profile.
 */
export function serve(name: string, start: (port: number) => Promise<Started>): void {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
  if (!Number.isInteger(port) || port <= 0) {
    process.stderr.write(`${name}: usage: <script> <port>\n`);
    process.exit(2);
  }
  start(port).then(
    (server) => {
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        const force = setTimeout(() => process.exit(0), 3_000);
        force.unref();
        server.close().finally(() => process.exit(0));
      };
      process.on("SIGTERM", stop);
      process.on("SIGINT", stop);
      process.stdout.write(`READY ${port}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`${name} failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
