import { Migrator, sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../gen/grpc/health/v1/health_pb.js";
import { migrations } from "../migrations/index.js";
import { migrateToLatest } from "../src/db/migrator.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";

async function eventually(probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.each(databaseKinds)("readiness checks the schema on %s", (kind) => {
  let server: TestServer;
  const latest = Object.keys(migrations).at(-1)!;
  const readyz = async () => {
    const res = await fetch(`${server.baseUrl}/readyz`);
    return { status: res.status, body: (await res.json()) as { status: string; reason?: string } };
  };
  const healthz = async () => (await fetch(`${server.baseUrl}/healthz`)).status;
  const grpcHealth = async () => (await clientFor(Health, "grpc", server.baseUrl).check({ service: "" })).status;

  // A server per test: a current schema is believed for a minute, so each
  // test changes the schema before its server's first probe.
  beforeEach(async () => {
    server = await startServer(kind);
  });
  afterEach(async () => {
    await server?.close();
  });

  it("is NOT_SERVING while a migration is rolled back, alive all along, and ready once migrated again", async () => {
    const db = server.app.database.db;
    const down = await new Migrator({ db, provider: { getMigrations: async () => migrations } }).migrateDown();
    expect(down.error).toBeUndefined();
    expect(down.results?.map((r) => r.migrationName)).toEqual([latest]);

    const ready = await readyz();
    expect(ready.status).toBe(503);
    expect(ready.body).toEqual({ status: "not ready", reason: `schema is behind: migration ${latest} not applied` });
    expect(await grpcHealth()).toBe(Status.NOT_SERVING);
    expect(await healthz()).toBe(200);

    await migrateToLatest(db);
    // A mismatch is re-checked every second, so both turn ready soon after the migration.
    await eventually(async () => (await readyz()).status === 200);
    await eventually(async () => (await grpcHealth()) === Status.SERVING);
  });

  it("is NOT_SERVING when the database has a migration this build does not know", async () => {
    const db = server.app.database.db;
    const future = "29991231000000_from_a_newer_build";
    await sql`insert into kysely_migration (name, timestamp) values (${future}, ${new Date().toISOString()})`.execute(db);
    const ready = await readyz();
    expect(ready.status).toBe(503);
    expect(ready.body).toEqual({ status: "not ready", reason: `schema is ahead: migration ${future} unknown to this build` });
    expect(await grpcHealth()).toBe(Status.NOT_SERVING);
    expect(await healthz()).toBe(200);
  });
});
