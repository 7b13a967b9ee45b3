import { execFile } from "node:child_process";
import net from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const tsx = join(process.cwd(), "node_modules", ".bin", "tsx");

/** Starts `npm start`'s entry point with `env` and returns what it printed on failing. */
async function failedStart(env: Record<string, string>): Promise<string> {
  const outcome = await run(tsx, ["src/main.ts"], { env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent", ...env }, timeout: 60_000 }).then(
    () => undefined,
    (err: { code?: number; stderr?: string }) => err,
  );
  expect(outcome, "the gateway must not start").toBeDefined();
  expect(outcome!.code).toBe(1);
  return outcome!.stderr ?? "";
}

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/**
 * A start that fails says why: the cause under the wrapper ("migration …
 * failed") is printed — the database does not exist, the connection was
 * refused, the role was refused — not only the wrapper's stack.
 */
describe("a failed start", () => {
  it("names a refused connection", async () => {
    const stderr = await failedStart({ DATABASE_URL: `postgres://postgres@127.0.0.1:${await closedPort()}/anvil` });
    expect(stderr).toMatch(/^anvil failed to start: /);
    expect(stderr).toMatch(/ECONNREFUSED/);
  });

  const adminUrl = process.env.TEST_DATABASE_URL;
  it.skipIf(!adminUrl)("names a database that does not exist", async () => {
    const url = new URL(adminUrl!);
    url.pathname = "/anvil_no_such_database";
    const stderr = await failedStart({ DATABASE_URL: url.toString() });
    expect(stderr).toMatch(/database "anvil_no_such_database" does not exist/);
  });

  it.skipIf(!adminUrl)("names a role the server refuses", async () => {
    const url = new URL(adminUrl!);
    url.username = "anvil_no_such_role";
    const stderr = await failedStart({ DATABASE_URL: url.toString() });
    expect(stderr).toMatch(/role "anvil_no_such_role" does not exist/);
  });
});
