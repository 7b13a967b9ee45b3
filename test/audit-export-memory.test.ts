import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditService } from "../gen/anvil/audit/v1/audit_pb.js";
import { clientFor } from "./support/clients.js";
import { createTestDatabase, type TestDatabase } from "./support/databases.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gateway-process.js";

const events = 100_000;
// Each event carries ~1 KiB of parameters: the whole export is ~150 MB of
// JSON, far more than the memory growth allowed below.
const padding = 1_000;
// What the gateway holds (its heap after a full GC) may grow by a batch or
// two; its RSS, which also counts garbage not yet collected and heap V8
// keeps after collecting, stays well below the export's size.
const allowedHeapGrowthBytes = 48 * 1024 * 1024;
const allowedRssGrowthBytes = 112 * 1024 * 1024;

/**
 * An export of 100,000 audit events streams with flat memory: the gateway
 * runs in a process of its own, whose RSS is sampled while the export is
 * read, over REST (JSON Lines) and over RPC (a server stream). PostgreSQL
 * only: on PGlite the database would live in the measured process.
 */
describe.skipIf(!process.env.TEST_DATABASE_URL)("audit export of 100,000 events on PostgreSQL only: flat memory", () => {
  let database: TestDatabase;
  let gateway: GatewayProcess;
  const start = new Date("2026-01-01T00:00:00Z");
  const end = new Date(start.getTime() + events * 1000 + 1000);

  beforeAll(async () => {
    database = await createTestDatabase("postgres");
    // The events are dated early in 2026: a retention that reaches them would delete them mid-export.
    gateway = await startGatewayProcess("postgres", { database, env: { ANVIL_AUDIT_RETENTION: "36500d" } });
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      // Inserted straight into the table (written by the gateway, they would take minutes to make).
      await client.query(
        `insert into audit_events (tenant_id, id, time, kind, credential_kind, credential_id, subject, method, protocol,
           request_id, trace_id, resource_ids, outcome, client_address, user_agent, parameters)
         select 'acme', gen_random_uuid(), $1::timestamptz + make_interval(secs => i), 'mutation', 'service_account', 'acme-admin',
           'admin@acme', 'anvil.users.v1.UserService/CreateUser', 'grpc', 'req-' || i, '', array[gen_random_uuid()::text], 0,
           '127.0.0.1', 'load/1.0', jsonb_build_object('user', jsonb_build_object('displayName', repeat('x', $2::int), 'n', i))
         from generate_series(1, $3::int) as i`,
        [start, padding, events],
      );
    } finally {
      await client.end();
    }
  }, 300_000);

  afterAll(async () => {
    await gateway?.close();
    await database?.drop();
  });

  /** Reads everything `read` yields while sampling the gateway's RSS; returns the count read and the peak growth. */
  async function measure(read: (onProgress: () => Promise<void>) => Promise<number>): Promise<{ count: number; growth: number; heapGrowth: number; baseline: number }> {
    await gateway.gc();
    const baseline = (await gateway.stats()).rssBytes;
    let peak = baseline;
    const heapBaseline = (await gateway.stats()).heapUsedBytes;
    let heapPeak = heapBaseline;
    let samples = 0;
    const sample = async () => {
      peak = Math.max(peak, (await gateway.stats()).rssBytes);
      if (++samples % 4 === 0) {
        // What the gateway holds, garbage aside.
        await gateway.gc();
        heapPeak = Math.max(heapPeak, (await gateway.stats()).heapUsedBytes);
      }
    };
    const count = await read(sample);
    await sample();
    return { count, growth: peak - baseline, heapGrowth: heapPeak - heapBaseline, baseline };
  }

  it("over REST, as JSON Lines", async () => {
    const token = await gateway.token("acme-admin");
    const result = await measure(async (sample) => {
      const res = await fetch(`${gateway.baseUrl}/v1/audit/events:export?startTime=${start.toISOString()}&endTime=${end.toISOString()}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(200);
      const decoder = new TextDecoder();
      let lines = 0;
      let bytes = 0;
      let sinceSample = 0;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        bytes += chunk.byteLength;
        const text = decoder.decode(chunk, { stream: true });
        for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) lines++;
        sinceSample += chunk.byteLength;
        if (sinceSample > 4 * 1024 * 1024) {
          sinceSample = 0;
          await sample();
        }
      }
      expect(bytes).toBeGreaterThan(100 * 1024 * 1024);
      return lines;
    });
    console.log(
      `REST export: ${result.count} events, RSS ${(result.baseline / 2 ** 20).toFixed(0)} MiB at start, peak RSS growth ${(result.growth / 2 ** 20).toFixed(1)} MiB, heap held after GC grew ${(result.heapGrowth / 2 ** 20).toFixed(1)} MiB`,
    );
    expect(result.count).toBe(events);
    expect(result.heapGrowth).toBeLessThan(allowedHeapGrowthBytes);
    expect(result.growth).toBeLessThan(allowedRssGrowthBytes);
  }, 600_000);

  it("over RPC, as a server stream of batches", async () => {
    const audit = clientFor(AuditService, "grpc", gateway.baseUrl, await gateway.token("acme-admin"));
    const result = await measure(async (sample) => {
      let count = 0;
      let batches = 0;
      for await (const batch of audit.exportAuditEvents({ startTime: timestampFromDate(start), endTime: timestampFromDate(end) }, { timeoutMs: 600_000 })) {
        count += batch.events.length;
        if (++batches % 10 === 0) await sample();
      }
      return count;
    });
    console.log(
      `RPC export: ${result.count} events, RSS ${(result.baseline / 2 ** 20).toFixed(0)} MiB at start, peak RSS growth ${(result.growth / 2 ** 20).toFixed(1)} MiB, heap held after GC grew ${(result.heapGrowth / 2 ** 20).toFixed(1)} MiB`,
    );
    expect(result.count).toBe(events);
    expect(result.heapGrowth).toBeLessThan(allowedHeapGrowthBytes);
    expect(result.growth).toBeLessThan(allowedRssGrowthBytes);
  }, 600_000);
});
