// A 50 MiB artifact goes up and comes back down through a gateway in its
// own process whose RSS, at its highest during each transfer, stands less
// than 20 MiB above where it stood before: the file is streamed to and from
// PostgreSQL a chunk at a time, never held whole, and the buffers each
// chunk leaves behind are freed as the transfer goes (TransferGarbage), not
// left to pile up for V8's next collection. PostgreSQL only: PGlite would
// keep the file inside the measured process.
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
 * glibc keeps freed memory for reuse rather than returning it; told to give
 * it back (what a memory-bounded deployment sets, or jemalloc does), the
 * RSS high-water mark shows what the transfer needed at its worst, not what
 * the allocator kept from before.
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

describe("a 50 MiB artifact on PostgreSQL: the gateway's memory stays flat while it passes", () => {
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

  it("uploads with PUT and downloads with GET, the peak RSS during each growing by less than 20 MiB", async () => {
    const editor = await gateway.token("acme-editor");
    const worker = await gateway.token("acme-worker");
    const workflows = clientFor(WorkflowService, "connect-json", gateway.baseUrl, editor);
    const workers = clientFor(WorkerService, "connect-json", gateway.baseUrl, worker);
    const workflow = (await workflows.createWorkflow({ workflow: { displayName: "big", state: Workflow_State.ACTIVE, steps: [{ name: "only", kind: "big" }] } })).workflow!;
    const operation = (await workflows.runWorkflow({ id: workflow.id })).operation!;
    const task = (await workers.claimTask({ kinds: ["big"], workerId: "mem", maxWait: { seconds: 5n, nanos: 0 }, leaseDuration: { seconds: 600n, nanos: 0 } })).task!;

    const put = (name: string, body: AsyncIterable<Uint8Array>, size: number) =>
      fetch(`${gateway.baseUrl}/v1/tasks/${task.id}/artifacts/${name}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${worker}`, "anvil-lease-token": task.leaseToken, "content-type": "application/octet-stream", "content-length": String(size) },
        body: body as unknown as BodyInit,
        duplex: "half",
      } as RequestInit);
    /** Downloads `name`, hashing it as it comes: its size and SHA-256. */
    const get = async (name: string) => {
      const got = await fetch(`${gateway.baseUrl}/v1/operations/${operation.id}/artifacts/${name}`, { headers: { authorization: `Bearer ${editor}` } });
      expect(got.status).toBe(200);
      const hash = createHash("sha256");
      let bytes = 0;
      for await (const chunk of got.body as unknown as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        bytes += chunk.byteLength;
      }
      return { bytes, sha: hash.digest("hex") };
    };
    /**
     * How far the gateway's RSS high-water mark rises during `transfer`
     * above where it stood after a full collection: what the transfer
     * itself needs at its worst, garbage not yet collected included.
     */
    const peakGrowth = async (transfer: () => Promise<void>) => {
      await gateway.gc();
      expect(await gateway.resetPeak(), "the kernel lets the child lower its RSS high-water mark").toBe(true);
      const before = (await gateway.stats()).peakRssBytes;
      await transfer();
      return (await gateway.stats()).peakRssBytes - before;
    };

    // A small round trip first: code compiled on first use and pools filled are no part of a transfer's cost.
    const warm = Buffer.alloc(4 * 1024 * 1024, 7);
    expect((await put("warm.bin", (async function* () { yield warm; })(), warm.byteLength)).status).toBe(201);
    expect((await get("warm.bin")).bytes).toBe(warm.byteLength);

    const sent = createHash("sha256");
    async function* body() {
      for (const piece of pieces()) {
        sent.update(piece);
        yield piece;
      }
    }
    let sha = "";
    const upload = await peakGrowth(async () => {
      const res = await put("big.bin", body(), totalBytes);
      expect(res.status, await res.clone().text()).toBe(201);
      sha = sent.digest("hex");
      expect(((await res.json()) as { etag: string }).etag).toBe(`"${sha}"`);
    });
    const download = await peakGrowth(async () => {
      expect(await get("big.bin")).toEqual({ bytes: totalBytes, sha });
    });
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    console.log(`artifact memory (50 MiB, PostgreSQL): peak RSS growth during the upload ${mib(upload)} MiB, during the download ${mib(download)} MiB`);
    expect(upload).toBeLessThan(allowedRssGrowthBytes);
    expect(download).toBeLessThan(allowedRssGrowthBytes);
    // The operation's list shows it with its size.
    const operations = clientFor(OperationService, "connect-json", gateway.baseUrl, editor);
    expect((await operations.listArtifacts({ operationId: operation.id })).artifacts.find((a) => a.name === "big.bin")!.sizeBytes).toBe(BigInt(totalBytes));
  }, 180_000);
});
