import { Code, ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserService } from "../../gen/anvil/users/v1/users_pb.js";
import { clientFor } from "../support/clients.js";
import { createTestDatabase, type TestDatabase } from "../support/databases.js";
import { startServer, type TestServer } from "../support/server.js";

/**
 * A PostgreSQL server that refuses new connections — the database closed to
 * connections (55000), renamed away (3D000), the role refused (class 28),
 * the connection limit reached (53300) — makes a call UNAVAILABLE, which
 * clients retry, never INTERNAL. Each case closes the door on the test's
 * own database on the shared server, then ends its open sessions so the
 * pool has to connect again.
 */
const adminUrl = process.env.TEST_DATABASE_URL;

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

describe.skipIf(!adminUrl)("a database that refuses connections", () => {
  let database: TestDatabase;
  let name: string;
  let role: string;
  let server: TestServer;

  beforeAll(async () => {
    database = await createTestDatabase("postgres");
    name = new URL(database.url!).pathname.slice(1);
    role = `${name}_role`;
    // Not a superuser, whom connection limits do not bind: the database's owner.
    await admin(`create role ${role} login`);
    await admin(`alter database ${name} owner to ${role}`);
    const url = new URL(database.url!);
    url.username = role;
    server = await startServer("postgres", { database: { ...database, url: url.toString() } });
  });
  afterAll(async () => {
    await server?.close();
    await admin(`alter database ${name} allow_connections true`).catch(() => undefined);
    await database?.drop();
    await admin(`drop role if exists ${role}`).catch(() => undefined);
  });

  const kick = () => admin(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}' and pid <> pg_backend_pid()`);

  async function expectUnavailable(): Promise<void> {
    const users = clientFor(UserService, "connect-json", server.baseUrl, await server.token());
    const err = await users.listUsers({}).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err, "the call must fail").toBeDefined();
    expect(Code[err!.code]).toBe(Code[Code.Unavailable]);
    expect(err!.rawMessage).not.toMatch(/postgres|database .*does not exist|connections|role|authentication|anvil_test/i);
  }

  async function expectServing(): Promise<void> {
    const users = clientFor(UserService, "connect-json", server.baseUrl, await server.token());
    await users.listUsers({});
  }

  it("is UNAVAILABLE while the database does not allow connections (55000)", async () => {
    await expectServing();
    await admin(`alter database ${name} allow_connections false`);
    try {
      await kick();
      await expectUnavailable();
    } finally {
      await admin(`alter database ${name} allow_connections true`);
    }
    await expectServing();
  });

  it("is UNAVAILABLE while the database does not exist (3D000)", async () => {
    await admin(`alter database ${name} allow_connections false`);
    await kick();
    await admin(`alter database ${name} rename to ${name}_away`);
    try {
      await expectUnavailable();
    } finally {
      await admin(`alter database ${name}_away rename to ${name}`);
      await admin(`alter database ${name} allow_connections true`);
    }
    await expectServing();
  });

  it("is UNAVAILABLE while the role may not log in (class 28)", async () => {
    await admin(`alter role ${role} nologin`);
    try {
      await kick();
      await expectUnavailable();
    } finally {
      await admin(`alter role ${role} login`);
    }
    await expectServing();
  });

  it("is UNAVAILABLE while the database's connection limit is reached (53300)", async () => {
    await admin(`alter database ${name} connection limit 0`);
    try {
      await kick();
      await expectUnavailable();
    } finally {
      await admin(`alter database ${name} connection limit -1`);
    }
    await expectServing();
  });
});
