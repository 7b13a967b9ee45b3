import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { Writable } from "node:stream";
import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkflowService } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { drain, keyOfTier, limitEnv, outcome, TestRedis, testTiers } from "./support/rate-limits.js";
import { startServer, type TestServer } from "./support/server.js";
import { mintToken, testKeys } from "./support/tokens.js";

/**
 * Limits shared through Redis, against a redis-server of the test's own (so
 * it can be stopped): three gateway instances enforce one limit together,
 * and while Redis is down every call is still served — limited per instance
 * — with one warning, until the shared limits resume.
 */

describe.each(databaseKinds)("rate limits shared through Redis on %s", (kind) => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(() => redis?.stop());

  describe("three instances", () => {
    const instances: TestServer[] = [];
    /** A service-account key of the `free` tier that all three instances trust (the keys file's `tier` field). */
    const freeKey = { ...testKeys()[0]!, key_id: "acme-free", principal: "free@acme", roles: ["viewer"], tier: "free" };
    beforeAll(async () => {
      // Each instance has a database of its own (PGlite cannot be shared): the limit is shared through Redis alone.
      const env = limitEnv(redis.url);
      for (let i = 0; i < 3; i++) instances.push(await startServer(kind, { env }));
      const file = JSON.stringify({ keys: [...Object.values(instances[0]!.keys), freeKey] });
      for (const s of instances) {
        writeFileSync(s.keysFile, file);
        s.app.keys.reload();
        expect(s.app.keys.get("acme-free")?.tier).toBe("free");
      }
      // Three gateways start one after another, each migrating its database: slow on a loaded machine.
    }, 300_000);
    afterAll(async () => {
      for (const s of instances) await s.close();
    });

    it("enforce one burst and one rate together", async () => {
      const token = await mintToken(freeKey);
      const clients = instances.map((s) => clientFor(WorkflowService, "connect-json", s.baseUrl, token));
      let turn = 0;
      const next = () => clients[turn++ % clients.length]!.listWorkflows({});
      const perMs = testTiers.free.ratePerMinute / 60_000;
      const { allowed, elapsedMs } = await drain(next);
      // One bucket of 5, not three: per-instance buckets would allow 15.
      expect(allowed).toBeGreaterThanOrEqual(testTiers.free.burst);
      expect(allowed).toBeLessThanOrEqual(testTiers.free.burst + Math.floor(elapsedMs * perMs) + 1);

      // Then one token a second across all three, whichever instance is asked.
      const start = performance.now();
      let refilled = 0;
      while (performance.now() - start < 3_000) {
        if ((await outcome(next())) === undefined) refilled++;
        await new Promise((r) => setTimeout(r, 20));
      }
      const window = performance.now() - start;
      console.info(`${kind} three instances: ${allowed} allowed in ${Math.round(elapsedMs)} ms (burst ${testTiers.free.burst}), then ${refilled} in ${Math.round(window)} ms (configured 1 per ${Math.round(1 / perMs)} ms)`);
      expect(refilled).toBeGreaterThanOrEqual(Math.floor(window * perMs) - 1);
      expect(refilled).toBeLessThanOrEqual(Math.ceil(window * perMs) + 1);
    });
  });

  describe("Redis stopped and started again", () => {
    const lines: string[] = [];
    let server: TestServer;
    const prefix = `anvil-test:${randomUUID()}:`;
    beforeAll(async () => {
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(...chunk.toString().split("\n").filter((l) => l !== ""));
          done();
        },
      });
      server = await startServer(kind, { env: limitEnv(redis.url, prefix), log: pino({ level: "info" }, sink) });
    });
    afterAll(() => server?.close());

    it("loses no request: calls are limited per instance meanwhile, with one warning, and shared again once Redis is back", async () => {
      const secret = await keyOfTier(server, "enterprise");
      const client = clientFor(WorkflowService, "connect-json", server.baseUrl, secret);
      const inspect = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
      const failures: unknown[] = [];
      let calls = 0;
      let withHeaders = 0;
      const call = async () => {
        calls++;
        let header: Headers | undefined;
        const err = await outcome(client.listWorkflows({}, { onHeader: (h) => (header = h) }));
        if (err !== undefined) failures.push(err);
        else if (header?.get("ratelimit") !== null) withHeaders++;
      };
      // Four callers in parallel, all through the stop and the restart.
      let running = true;
      const callers = Array.from({ length: 4 }, async () => {
        while (running) await call();
      });
      try {
        await new Promise((r) => setTimeout(r, 500));
        await inspect.connect();
        expect(await inspect.keys(`${prefix}*`)).toHaveLength(1);
        inspect.disconnect();
        await redis.stop();
        const whileDown = calls;
        await new Promise((r) => setTimeout(r, 1_500));
        expect(calls - whileDown).toBeGreaterThan(10);
        await redis.start();
        // Shared again: the key reappears in the fresh Redis as calls take from it.
        const back = new Redis(redis.url, { maxRetriesPerRequest: 0 });
        const deadline = Date.now() + 15_000;
        let keys: string[] = [];
        while (keys.length === 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
          keys = await back.keys(`${prefix}*`);
        }
        expect(keys).toHaveLength(1);
        back.disconnect();
      } finally {
        running = false;
        await Promise.all(callers);
      }
      console.info(`${kind} Redis stopped and restarted: ${calls} calls, ${failures.length} failed`);
      expect(failures).toEqual([]);
      expect(withHeaders).toBe(calls);
      const warnings = lines.filter((l) => l.includes("Redis unreachable"));
      expect(warnings).toHaveLength(1);
      expect(lines.filter((l) => l.includes("Redis answers again"))).toHaveLength(1);
      const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
      expect(Number(/anvil_rate_limit_local_fallbacks_total (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(10);
    });
  });
});
