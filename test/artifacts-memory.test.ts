// A 50 MiB artifact goes up and comes back down through a gateway in its
// own process whose RSS grows by less than 20 MiB: the file is streamed to
// and from PostgreSQL a chunk at a time, never held whole. PostgreSQL only:
// PGlite would keep the file inside the measured process.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OperationService, WorkerService } from "../gen/anvil/operations/v1/operations_pb.js";
import { Workflow_State, WorkflowService } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { clientFor } from "./support/clients.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gateway-process.js";
import { suitePostgres } from "./support/suite-postgres.js";

const totalBytes = 50 * 1024 * 1024;
const allowedRssGrowthBytes = 20 * 1024 * 1024;
const pieceBytes = 1024 * 1024;
/**
 * Bytes that pass through Node as transient buffers are freed by V8 only
 * when it collects (external memory triggers a collection every ~64 MiB),
 * and then kept by glibc's allocator for reuse rather than returned. The
 * test samples RSS after a full collection in the child, and tells glibc
 * to give freed memory back (what a memory-bounded deployment sets, or
 * jemalloc does), so that RSS shows what the gateway holds: a gateway that
 * buffered the file would hold all 50 MiB of it at the peak.
 */
const returnFreedMemory = { MALLOC_MMAP_THRESHOLD_: "32768", MALLOC_TRIM_THRESHOLD_: "131072" };

/** 50 MiB of reproducible, incompressible bytes, a MiB at a time (the test never holds them whole either). */
function* pieces(): Generator<Uint8Array> {
  for (let i = 0; i < totalBytes / pieceBytes; i++) {
    const piece = new Uint8Array(pieceBytes);
    let x = (i + 1) * 2654435761;
    for (let j = 0; j < pieceBytes; j += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      piece[j] = x & 0xff;
      piece[j + 1] = (x >>> 8) & 0xff;
      piece[j + 2] = (x >>> 16) & 0xff;
      piece[j + 3] = (x >>> 24) & 0xff;
    }
    yield piece;
  }
}

describe("a 50 MiB artifact on PostgreSQL: the gateway's memory stays flat", () => {
  let postgres: Awaited<ReturnType<typeof suitePostgres>>;
  let gateway: GatewayProcess;
  beforeAll(async () => {
    postgres = await suitePostgres();
    gateway = await startGatewayProcess("postgres", { database: postgres.database, env: returnFreedMemory });
  }, 120_000);
  afterAll(async () => {
    await gateway?.close();
    await postgres?.close();
  });

  it("uploads with PUT and downloads with GET, RSS growing by less than 20 MiB", async () => {
    const editor = await gateway.token("acme-editor");
    const worker = await gateway.token("acme-worker");
    const workflows = clientFor(WorkflowService, "connect-json", gateway.baseUrl, editor);
    const workers = clientFor(WorkerService, "connect-json", gateway.baseUrl, worker);
    const workflow = (await workflows.createWorkflow({ workflow: { displayName: "big", state: Workflow_State.ACTIVE, steps: [{ name: "only", kind: "big" }] } })).workflow!;
    const operation = (await workflows.runWorkflow({ id: workflow.id })).operation!;
    const task = (await workers.claimTask({ kinds: ["big"], workerId: "mem", maxWait: { seconds: 5n, nanos: 0 }, leaseDuration: { seconds: 600n, nanos: 0 } })).task!;

    await gateway.gc();
    const baseline = (await gateway.stats()).rssBytes;
    let peak = baseline;
    const sample = async () => {
      // What the gateway holds: garbage (a file's worth passes through as transient buffers) collected first.
      await gateway.gc();
      peak = Math.max(peak, (await gateway.stats()).rssBytes);
    };

    const sent = createHash("sha256");
    async function* body() {
      let n = 0;
      for (const piece of pieces()) {
        sent.update(piece);
        yield piece;
        if (++n % 8 === 0) await sample();
      }
    }
    const put = await fetch(`${gateway.baseUrl}/v1/tasks/${task.id}/artifacts/big.bin`, {
      method: "PUT",
      headers: { authorization: `Bearer ${worker}`, "anvil-lease-token": task.leaseToken, "content-type": "application/octet-stream", "content-length": String(totalBytes) },
      body: body() as unknown as BodyInit,
      duplex: "half",
    } as RequestInit);
    expect(put.status, await put.clone().text()).toBe(201);
    const sha = sent.digest("hex");
    expect(((await put.json()) as { etag: string }).etag).toBe(`"${sha}"`);
    await sample();
    const afterUpload = peak - baseline;

    const got = await fetch(`${gateway.baseUrl}/v1/operations/${operation.id}/artifacts/big.bin`, { headers: { authorization: `Bearer ${editor}` } });
    expect(got.status).toBe(200);
    expect(got.headers.get("content-length")).toBe(String(totalBytes));
    const received = createHash("sha256");
    let bytes = 0;
    let since = 0;
    for await (const chunk of got.body as unknown as AsyncIterable<Uint8Array>) {
      received.update(chunk);
      bytes += chunk.byteLength;
      since += chunk.byteLength;
      if (since >= 8 * pieceBytes) {
        since = 0;
        await sample();
      }
    }
    await sample();
    expect(bytes).toBe(totalBytes);
    expect(received.digest("hex")).toBe(sha);
    console.log(`artifact memory: baseline RSS ${(baseline / 2 ** 20).toFixed(1)} MiB, growth after upload ${(afterUpload / 2 ** 20).toFixed(1)} MiB, after download ${((peak - baseline) / 2 ** 20).toFixed(1)} MiB`);
    expect(peak - baseline).toBeLessThan(allowedRssGrowthBytes);
    // The operation's list shows it with its size.
    const operations = clientFor(OperationService, "connect-json", gateway.baseUrl, editor);
    expect((await operations.listArtifacts({ operationId: operation.id })).artifacts[0]!.sizeBytes).toBe(BigInt(totalBytes));
  }, 180_000);
});
