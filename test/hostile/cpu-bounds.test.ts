// What one request may cost the gateway: for the worst inputs found per
// method (within the size limits), the event loop is never busy for more
// than 50 ms + 20 ms per MiB of body at once, and RSS does not balloon.
// Measured in a gateway of its own process (startGatewayProcess), on
// PostgreSQL only: PGlite runs its queries on the gateway's own thread, so
// with it the gateway's event loop would also measure the database.
import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { structLimits } from "../../src/rpc/validation/struct-budget.js";
import { type GatewayProcess, startGatewayProcess } from "../support/gateway-process.js";

const MiB = 1024 * 1024;
/** The issue's bound: 50 ms plus 20 ms per MiB of request body. */
const delayBoundMs = (bodyBytes: number) => 50 + (20 * bodyBytes) / MiB;
/** RSS may grow by this much above where it was before a request (peak, not after). */
const rssBoundBytes = 128 * MiB;
/**
 * A shared machine deschedules the gateway mid-request, and the delay
 * histogram counts that as a busy loop too: at a load of 20 on two cores a
 * 10 ms slice of work shows as 60-100 ms. So the longest block is scaled by
 * the share of the wall-clock time of the call that the gateway spent on a
 * CPU (1 when it had a core to itself and never waited), and a request is
 * tried up to this many times, its best attempt counting. A super-linear
 * cost still shows: the worst inputs before the fixes scored seconds.
 */
const attempts = 5;

const F = "anvil.findings.v1.FindingService";
/** Levels of nested objects a Struct may have (struct-budget.ts). */
const depthAllowed = structLimits.maxDepth;
const path = (segments: number) => "a/".repeat(segments);
/** `n` in letters: fingerprints mask digits, and the messages must stay distinct. */
const letters = (n: number) => [...n.toString(26)].map((c) => String.fromCharCode(97 + parseInt(c, 26))).join("");
/** A 4,000-character message of camelCase words: the most words() has to split. */
const wordy = (n: number) =>
  Array.from({ length: 330 }, (_, j) => `valueOf${letters(n)}X${letters(j)}`)
    .join(" ")
    .slice(0, 4000);
const finding = (line: number, message: string, filePath = "src/a.ts") => ({
  finding: { filePath, line, severity: "SEVERITY_HIGH", issueType: "null-dereference", ruleId: "r1", message, source: "cpu-bounds" },
});

interface Cost {
  readonly status: number;
  readonly bodyBytes: number;
  readonly maxDelayMs: number;
  /** The share of the call's wall-clock time the gateway spent on a CPU, at most 1. */
  readonly cpuShare: number;
  /** maxDelayMs × cpuShare: the block, without the time the machine gave to others. */
  readonly blockMs: number;
  readonly rssGrowthBytes: number;
  /** How long the call took, as the client saw it. */
  readonly totalMs: number;
}

describe.skipIf(!process.env.TEST_DATABASE_URL)(
  "CPU bounded per request (PostgreSQL only: TEST_DATABASE_URL unset skips it, as PGlite runs queries on the gateway's thread)",
  () => {
    let gateway: GatewayProcess;
    let token: string;
    let lastResponse = "";

    const post = async (method: string, body: string) => {
      const res = await fetch(`${gateway.baseUrl}/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body,
      });
      lastResponse = await res.text();
      return res.status;
    };

    /** The best of `attempts` tries at `message`: the longest single block of the event loop and the RSS peak above the start. */
    async function cost(method: string, message: unknown): Promise<Cost> {
      const body = JSON.stringify(message);
      const bodyBytes = Buffer.byteLength(body);
      let best: Cost | undefined;
      for (let i = 0; i < attempts; i++) {
        await gateway.gc();
        const before = await gateway.stats();
        await gateway.reset();
        const start = performance.now();
        const status = await post(method, body);
        const totalMs = performance.now() - start;
        const after = await gateway.stats();
        const cpuShare = Math.min(1, (after.cpuMicros - before.cpuMicros) / 1000 / totalMs);
        const tried = {
          status,
          bodyBytes,
          maxDelayMs: after.maxDelayMs,
          cpuShare,
          blockMs: after.maxDelayMs * cpuShare,
          rssGrowthBytes: after.peakRssBytes - before.rssBytes,
          totalMs,
        };
        if (!best || tried.blockMs < best.blockMs) best = tried;
        // Far over the bound is no scheduling hiccup: no need to wait for more.
        if (best.blockMs <= delayBoundMs(bodyBytes) || best.blockMs > 10 * delayBoundMs(bodyBytes)) break;
      }
      return best!;
    }

    function expectBounded(c: Cost, status = 200): void {
      expect(c.status).toBe(status);
      const what = `event loop busy at once (ms, ${c.maxDelayMs.toFixed(0)} ms wall × CPU share ${c.cpuShare.toFixed(2)}), body ${c.bodyBytes} bytes`;
      expect(c.blockMs, what).toBeLessThanOrEqual(delayBoundMs(c.bodyBytes));
      expect(c.rssGrowthBytes / MiB, "RSS growth (MiB)").toBeLessThanOrEqual(rssBoundBytes / MiB);
    }

    beforeAll(async () => {
      gateway = await startGatewayProcess("postgres");
      token = await gateway.token();
      // Candidates for CorrelateAlert: the most it scores (2,000) in the
      // alert's file, each with as many words as a message may have.
      for (let b = 0; b < 2; b++) {
        const requests = Array.from({ length: 1000 }, (_, i) => finding(b * 1000 + i + 1, wordy(b * 1000 + i)));
        expect(await post(`${F}/BatchCreateFindings`, JSON.stringify({ requests }))).toBe(200);
      }
      // Warm the code paths up, so a first call's compilation is not counted.
      for (let i = 0; i < 5; i++) {
        const alert = { filePath: "/app/src/w.ts", line: 1, errorMessage: "x", stackTrace: `at f (/app/src/w.ts:${i}:2)` };
        await post(`${F}/CorrelateAlert`, JSON.stringify(alert));
        await post(`${F}/BatchCreateFindings`, JSON.stringify({ requests: [finding(i + 1, `warm 'up' ${i}`, "src/w.ts")] }));
      }
    }, 180_000);

    afterAll(async () => {
      await gateway?.close();
    });

    describe("CorrelateAlert", () => {
      // Wordy error and an alert file holding all 2,000 candidates: every
      // case also scores the most findings it can.
      const alert = (stackTrace: string) => ({
        filePath: "/app/src/a.ts",
        line: 5,
        errorMessage: wordy(0).repeat(2),
        stackTrace,
        maxResults: 100,
      });
      // Every case scored the candidates, not an empty list.
      afterEach(() => expect(JSON.parse(lastResponse).findings).toHaveLength(100));

      it("reads 64 KiB of `a.a.a.…` (no colon) without backtracking", async () => {
        // Before: the frame regex retried every start and every dot, ~24 s.
        expectBounded(await cost(`${F}/CorrelateAlert`, alert("a.".repeat(32768))));
      });

      it("reads 32 KiB of `a/a/…:1` without backtracking", async () => {
        expectBounded(await cost(`${F}/CorrelateAlert`, alert(`${path(16000)}:1`)));
      });

      it("does not materialise every suffix of a 64 KiB frame path", async () => {
        // Before: 32,000 suffixes of up to 64 KiB each, ~2 GiB and 11 s.
        expectBounded(await cost(`${F}/CorrelateAlert`, alert(`${path(32765)}b.ts:1`)));
      });

      it("indexes the suffixes of 50 deep frames once per alert, not per candidate", async () => {
        const trace = Array.from({ length: 50 }, (_, i) => `at f (${path(640)}f${i}.ts:${i}:1)`).join("\n");
        expectBounded(await cost(`${F}/CorrelateAlert`, alert(trace)));
      });

      it("reads a trace of 10,000 repeats of one frame", async () => {
        expectBounded(await cost(`${F}/CorrelateAlert`, alert("at f (a.b:1) ".repeat(5000))));
      });
    });

    describe("BatchCreateFindings", () => {
      it("masks the quoted literals of messages of `'\\'\\'…` in linear time", async () => {
        // Before: each unclosed quote rescanned the rest of the message,
        // 40-100 ms a message of 4,000 characters. Slices bound each block
        // to one message, so the total shows it: 200 of them took 8-20 s.
        const requests = Array.from({ length: 200 }, (_, i) => finding(i + 1, `${i}'${"\\'".repeat(1995)}`, "src/q.ts"));
        const c = await cost(`${F}/BatchCreateFindings`, { requests });
        expectBounded(c);
        expect(c.totalMs, "whole call (ms)").toBeLessThan(3000);
      });

      it("yields between slices while fingerprinting 1,000 messages of 4,000 quotes", async () => {
        // Linear, but up to ~1 ms a message: 0.3-1 s in one go without slices.
        const requests = Array.from({ length: 1000 }, (_, i) => finding(i + 1, `${i}${"'".repeat(3990)}`, "src/s.ts"));
        expectBounded(await cost(`${F}/BatchCreateFindings`, { requests }));
      });
    });

    describe("free-form JSON (google.protobuf.Struct)", () => {
      const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
      it("refuses a task result of 20,000 keys before decoding it", async () => {
        // Before: decoded into 20,000 messages, then checked: ~300 ms at once.
        const c = await cost("anvil.operations.v1.WorkerService/CompleteTask", { taskId: randomUUID(), leaseToken: randomUUID(), result: keys(20_000) });
        expectBounded(c, 400);
        expect(lastResponse).toMatch(/result free-form JSON must hold at most/);
      });

      // A batch of completions, its results as many free-form values as a request may hold
      // (structLimits.maxValues, over all items), each as deep as they allow: a batch RPC
      // was once reverted because 100 items of nested Structs held the loop past the bound.
      for (const items of [99, 100]) {
        const values = Math.floor(structLimits.maxValues / items);
        it(`completes a batch of ${items} tasks whose results nest ${values} values within the bound`, async () => {
          type Json = number | { [key: string]: Json };
          const deep = (): Json => {
            let value: Json = 1;
            for (let i = 0; i < values; i++) value = { a: value };
            return value;
          };
          const requests = Array.from({ length: items }, () => ({ taskId: randomUUID(), leaseToken: randomUUID(), result: deep() }));
          const c = await cost("anvil.operations.v1.WorkerService/BatchCompleteTasks", { requests });
          expect(c.status, lastResponse.slice(0, 300)).toBe(200);
          expectBounded(c);
          expect(lastResponse).toContain("NOT_FOUND");
        });
      }

      it("refuses 200 steps of 1,000-key configs before parsing them", async () => {
        const steps = Array.from({ length: 200 }, (_, i) => ({ name: `s${i}`, kind: "noop", config: keys(1_000) }));
        const c = await cost("anvil.workflows.v1.WorkflowService/CreateWorkflow", { workflow: { displayName: "w", steps } });
        expectBounded(c, 400);
        expect(lastResponse).toMatch(/more than \d+ object members/);
      });
    });

    describe("idempotent creates", () => {
      it("hashes a request of a config nested as deep as JSON decoding allows in linear time", async () => {
        // Before: each level joined its children's text into a new string,
        // so the 8 MiB leaf was copied once per level (~45 times).
        type Json = string | { [key: string]: Json };
        let config: Json = { leaf: "x".repeat(8 * MiB) };
        for (let i = 1; i < depthAllowed; i++) config = { a: config, b: "y" };
        const agent = { displayName: "deep", model: "m", config };
        const c = await cost("anvil.agents.v1.AgentService/CreateAgent", { agent, requestId: randomUUID() });
        expectBounded(c);
      });
    });
  },
);
