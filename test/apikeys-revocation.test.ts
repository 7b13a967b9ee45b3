import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../gen/anvil/apikeys/v1/apikeys_pb.js";
import { OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { clientFor } from "./support/clients.js";
import { createTestDatabase, type TestDatabase } from "./support/databases.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gateway-process.js";
import { testKeys } from "./support/tokens.js";

/**
 * A revoked API key stops working on every instance within a second: three
 * gateway processes share one PostgreSQL database, each with a cache that
 * would trust the key for a minute without the revocation's NOTIFY. The
 * measured delay from RevokeApiKey's answer to the first refusal on each
 * instance is printed.
 */
describe.skipIf(!process.env.TEST_DATABASE_URL)("API key revocation across three gateway processes on PostgreSQL", () => {
  let database: TestDatabase;
  const gateways: GatewayProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase("postgres");
    const keys = testKeys();
    // A minute-long backstop: only the notification (or a listener reconnect) can explain a refusal within a second.
    const env = { ANVIL_API_KEY_CACHE_MS: "60000", ANVIL_DB_POOL_SIZE: "4" };
    // One at a time: the first migrates the database, the others find it migrated.
    for (let i = 0; i < 3; i++) gateways.push(await startGatewayProcess("postgres", { database, keys, env }));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await database?.drop();
  });

  const refusedWithin = async (secret: string, since: number, limitMs: number): Promise<number[]> =>
    Promise.all(
      gateways.map(async (g) => {
        const ops = clientFor(OperationService, "connect-json", g.baseUrl, { "x-api-key": secret });
        for (;;) {
          const outcome = await ops.listOperations({}).then(() => "ok", (e: unknown) => ConnectError.from(e).code);
          if (outcome === Code.Unauthenticated) return Date.now() - since;
          expect(outcome).toBe("ok");
          if (Date.now() - since > limitMs) return Number.POSITIVE_INFINITY;
          await new Promise((r) => setTimeout(r, 5));
        }
      }),
    );

  const newKey = async () => {
    const admin = clientFor(ApiKeyService, "connect-json", gateways[0]!.baseUrl, await gateways[0]!.token());
    const { apiKey, secret } = await admin.createApiKey({ apiKey: { displayName: `rev-${randomUUID()}`, roles: ["viewer"] } });
    // Every instance has verified (and cached) the key before it is revoked.
    for (const g of gateways) await clientFor(OperationService, "connect-json", g.baseUrl, { "x-api-key": secret }).listOperations({});
    return { id: apiKey!.id, secret, admin };
  };

  it("refuses the key on every instance within one second of RevokeApiKey's answer", async () => {
    const { id, secret } = await newKey();
    // Revoked through the third instance; the other two learn it from PostgreSQL.
    const third = clientFor(ApiKeyService, "connect-json", gateways[2]!.baseUrl, await gateways[2]!.token());
    await third.revokeApiKey({ id });
    const answered = Date.now();
    const delays = await refusedWithin(secret, answered, 5_000);
    console.log(`revocation → refusal per instance: ${delays.map((d, i) => `#${i + 1} ${d} ms`).join(", ")}`);
    for (const d of delays) expect(d).toBeLessThan(1_000);
  });

  it("flushes the caches when the listener reconnects, so a revocation missed meanwhile still applies", async () => {
    const { id, secret, admin } = await newKey();
    // Cut every instance's listening connection, then revoke before they listen again: the NOTIFY is lost.
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await client.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'anvil-listener' and datname = current_database()");
    } finally {
      await client.end();
    }
    await admin.revokeApiKey({ id });
    const answered = Date.now();
    const delays = await refusedWithin(secret, answered, 10_000);
    console.log(`revocation during listener reconnect → refusal per instance: ${delays.map((d, i) => `#${i + 1} ${d} ms`).join(", ")}`);
    for (const d of delays) expect(d).toBeLessThan(5_000);
  });
});
