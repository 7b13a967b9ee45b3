import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { clientFor } from "./support/clients.js";
import { createTestDatabase, type TestDatabase } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.js";

// PostgreSQL behind a proxy that can silently stop forwarding — the network
// cut that neither side notices, where the server's own statement_timeout
// cannot help because its answer never arrives.

describe.skipIf(!process.env.TEST_DATABASE_URL)("a silent network drop to PostgreSQL", () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let server: TestServer;
  beforeAll(async () => {
    database = await createTestDatabase("postgres");
    const url = new URL(database.url!);
    proxy = await startTcpProxy(Number(url.port || 5432), url.hostname);
    const viaProxy = new URL(database.url!);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    server = await startServer("postgres", {
      database: { ...database, url: viaProxy.toString() },
      env: { ANVIL_STATEMENT_TIMEOUT_MS: "300", ANVIL_DB_POOL_SIZE: "2" },
    });
  });
  afterAll(async () => {
    await server?.close();
    await proxy?.close();
    await database?.drop();
  });

  it("fails the request UNAVAILABLE within the client-side bound and frees the pool", async () => {
    const users = clientFor(UserService, "connect-json", server.baseUrl, await server.token());
    const { user } = await users.createUser({ user: { email: "cut@example.com" } });
    proxy.blackhole(true);
    const started = Date.now();
    const calls = [1, 2].map(() =>
      users.getUser({ id: user!.id }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      ),
    );
    const errors = await Promise.all(calls);
    const elapsed = Date.now() - started;
    for (const err of errors) {
      expect(err?.code).toBe(Code.Unavailable);
      expect(err?.message).not.toMatch(/Query read timeout/);
    }
    // statement timeout 300 ms + 5 s client-side margin, plus slack for a loaded machine.
    expect(elapsed).toBeLessThan(12_000);
    proxy.blackhole(false);
    // Both pooled connections were poisoned; had they gone back to the pool, these would hang.
    for (let i = 0; i < 4; i++) {
      const got = await users.getUser({ id: user!.id }, { timeoutMs: 5_000 });
      expect(got.user?.email).toBe("cut@example.com");
    }
  });
});
