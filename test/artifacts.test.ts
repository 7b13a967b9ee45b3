// Result files: a leased task uploads an artifact (gRPC client stream or a
// plain PUT), clients list and download it (whole, ranged, conditional,
// or as a server stream), and it goes with its operation.
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OperationService, type Task, type UploadArtifactRequest, WorkerService } from "../gen/anvil/operations/v1/operations_pb.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import { claim, type OperationClients, operationClients, runWorkflow, until } from "./support/operations.js";
import { startServer, type TestServer } from "./support/server.js";

const maxArtifactBytes = 1024 * 1024;

/** An UploadArtifact request stream: the header, then the content in pieces of `piece` bytes. */
async function* uploadMessages(task: Task, name: string, content: Uint8Array, options: { contentType?: string; sizeBytes?: bigint; piece?: number } = {}): AsyncGenerator<UploadArtifactRequest> {
  const piece = options.piece ?? 100_000;
  yield {
    $typeName: "anvil.operations.v1.UploadArtifactRequest",
    item: {
      case: "header",
      value: {
        $typeName: "anvil.operations.v1.UploadArtifactHeader",
        taskId: task.id,
        leaseToken: task.leaseToken,
        name,
        contentType: options.contentType ?? "application/octet-stream",
        sizeBytes: options.sizeBytes ?? BigInt(content.byteLength),
      },
    },
  };
  for (let at = 0; at < content.byteLength; at += piece) {
    yield { $typeName: "anvil.operations.v1.UploadArtifactRequest", item: { case: "chunk", value: content.subarray(at, at + piece) } };
  }
}

describe.each(databaseKinds)("artifacts on %s", (kind) => {
  let server: TestServer;
  let c: OperationClients;
  let editor: string;
  let worker: string;
  beforeAll(async () => {
    server = await startServer(kind, { env: { ANVIL_MAX_ARTIFACT_BYTES: String(maxArtifactBytes), ANVIL_HOUSEKEEPING_INTERVAL: "200ms", ANVIL_OPERATIONS_RETENTION: "1s" } });
    c = await operationClients(server, "grpc");
    editor = await server.token("acme-editor");
    worker = await server.token("acme-worker");
  });
  afterAll(() => server?.close());

  /** A running operation with its claimed task. */
  async function leased(kindName: string, leaseMs?: number): Promise<{ operationId: string; task: Task }> {
    const operation = await runWorkflow(c, [{ name: "only", kind: kindName }]);
    const task = (await claim(c, `w-${kindName}`, { kinds: [kindName], ...(leaseMs !== undefined && { leaseMs }) }))!;
    expect(task.operationId).toBe(operation.id);
    return { operationId: operation.id, task };
  }

  const download = (operationId: string, name: string, headers: Record<string, string> = {}, token = editor) =>
    fetch(`${server.baseUrl}/v1/operations/${operationId}/artifacts/${name}`, { headers: { authorization: `Bearer ${token}`, ...headers } });

  const put = (task: Task, name: string, body: Uint8Array, headers: Record<string, string> = {}) =>
    fetch(`${server.baseUrl}/v1/tasks/${task.id}/artifacts/${name}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${worker}`, "anvil-lease-token": task.leaseToken, "content-type": "text/plain", ...headers },
      body: body as unknown as BodyInit,
    });

  it("uploads over a gRPC client stream; lists, downloads whole and ranged, ETag and 304, and streams it back over RPC", async () => {
    const { operationId, task } = await leased("art-grpc");
    const content = randomBytes(700_000); // three stored chunks, the last one short
    const { artifact } = await c.workers.uploadArtifact(uploadMessages(task, "data.bin", content));
    const sha = createHash("sha256").update(content).digest("hex");
    expect(artifact).toMatchObject({ operationId, name: "data.bin", sizeBytes: 700_000n, etag: `"${sha}"`, taskId: task.id });

    expect((await c.operations.listArtifacts({ operationId })).artifacts.map((a) => a.name)).toEqual(["data.bin"]);

    const whole = await download(operationId, "data.bin");
    expect(whole.status).toBe(200);
    expect(whole.headers.get("content-type")).toBe("application/octet-stream");
    expect(whole.headers.get("content-length")).toBe("700000");
    expect(whole.headers.get("etag")).toBe(`"${sha}"`);
    expect(whole.headers.get("content-disposition")).toBe('attachment; filename="data.bin"');
    expect(Buffer.from(await whole.arrayBuffer()).equals(content)).toBe(true);

    // A range across a chunk boundary, an open range and a suffix: exactly the bytes asked for.
    for (const [range, start, end] of [["bytes=262000-262299", 262_000, 262_300], ["bytes=699990-", 699_990, 700_000], ["bytes=-5", 699_995, 700_000]] as const) {
      const part = await download(operationId, "data.bin", { range });
      expect(part.status, range).toBe(206);
      expect(part.headers.get("content-range")).toBe(`bytes ${start}-${end - 1}/700000`);
      expect(part.headers.get("content-length")).toBe(String(end - start));
      expect(Buffer.from(await part.arrayBuffer()).equals(content.subarray(start, end)), range).toBe(true);
    }
    const unsatisfiable = await download(operationId, "data.bin", { range: "bytes=700000-" });
    expect(unsatisfiable.status).toBe(416);
    expect(unsatisfiable.headers.get("content-range")).toBe("bytes */700000");

    const notModified = await download(operationId, "data.bin", { "if-none-match": `"${sha}"` });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.get("etag")).toBe(`"${sha}"`);
    expect((await download(operationId, "data.bin", { "if-none-match": '"other"' })).status).toBe(200);

    // The same bytes to an RPC client: the artifact, then chunks.
    const chunks: Uint8Array[] = [];
    let first: unknown;
    for await (const m of c.operations.downloadArtifact({ operationId, name: "data.bin", offset: 1000n, limit: 300_000n })) {
      if (m.item.case === "artifact") first = m.item.value;
      else if (m.item.case === "chunk") chunks.push(m.item.value);
    }
    expect(first).toMatchObject({ name: "data.bin" });
    expect(Buffer.concat(chunks).equals(content.subarray(1000, 301_000))).toBe(true);
  });

  it("uploads with a plain PUT (the lease in a header), replacing an artifact of the same name", async () => {
    const { operationId, task } = await leased("art-put");
    const first = await put(task, "report.txt", Buffer.from("first"));
    expect(first.status).toBe(201);
    const text = Buffer.from("# Report\nall good\n");
    const second = await put(task, "report.txt", text, { "content-type": "text/markdown" });
    expect(second.status).toBe(201);
    const body = (await second.json()) as { name: string; sizeBytes: string; contentType: string };
    expect(body).toMatchObject({ name: "report.txt", sizeBytes: String(text.byteLength), contentType: "text/markdown" });
    const got = await download(operationId, "report.txt");
    expect(got.headers.get("content-type")).toBe("text/markdown");
    expect(await got.text()).toBe(text.toString());
    expect((await c.operations.listArtifacts({ operationId })).artifacts).toHaveLength(1);
  });

  it("answers HEAD with the headers of GET and no body, reading no content", async () => {
    const { operationId, task } = await leased("art-head");
    const content = randomBytes(200_000);
    expect((await put(task, "head.bin", content, { "content-type": "application/x-thing" })).status).toBe(201);
    const etag = `"${createHash("sha256").update(content).digest("hex")}"`;
    const head = (headers: Record<string, string> = {}) =>
      fetch(`${server.baseUrl}/v1/operations/${operationId}/artifacts/head.bin`, { method: "HEAD", headers: { authorization: `Bearer ${editor}`, ...headers } });
    const whole = await head();
    expect(whole.status).toBe(200);
    expect(Object.fromEntries([...whole.headers].filter(([n]) => ["content-type", "content-length", "etag", "content-disposition", "accept-ranges"].includes(n)))).toEqual({
      "content-type": "application/x-thing",
      "content-length": "200000",
      etag,
      "content-disposition": 'attachment; filename="head.bin"',
      "accept-ranges": "bytes",
    });
    expect((await whole.arrayBuffer()).byteLength).toBe(0);
    const part = await head({ range: "bytes=10-19" });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe("bytes 10-19/200000");
    expect(part.headers.get("content-length")).toBe("10");
    expect((await head({ "if-none-match": etag })).status).toBe(304);
    expect((await head({ range: "bytes=200000-" })).status).toBe(416);
    // Refused the same way GET is.
    expect((await fetch(`${server.baseUrl}/v1/operations/${operationId}/artifacts/head.bin`, { method: "HEAD" })).status).toBe(401);
    const post = await fetch(`${server.baseUrl}/v1/operations/${operationId}/artifacts/head.bin`, { method: "POST", headers: { authorization: `Bearer ${editor}` } });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });

  it("honours a Range only while If-Range names the current entity tag, else sends the whole file (RFC 9110)", async () => {
    const { operationId, task } = await leased("art-if-range");
    const old = randomBytes(150_000);
    expect((await put(task, "resume.bin", old)).status).toBe(201);
    const oldTag = `"${createHash("sha256").update(old).digest("hex")}"`;
    const same = await download(operationId, "resume.bin", { range: "bytes=100000-", "if-range": oldTag });
    expect(same.status).toBe(206);
    expect(Buffer.from(await same.arrayBuffer()).equals(old.subarray(100_000))).toBe(true);
    // The artifact is replaced: a client resuming its old copy gets the new one whole, never a splice.
    const fresh = randomBytes(120_000);
    expect((await put(task, "resume.bin", fresh)).status).toBe(201);
    for (const validator of [oldTag, `W/${oldTag}`, "Tue, 01 Jan 2030 00:00:00 GMT"]) {
      const resumed = await download(operationId, "resume.bin", { range: "bytes=100000-", "if-range": validator });
      expect(resumed.status, validator).toBe(200);
      expect(resumed.headers.get("content-range")).toBeNull();
      expect(resumed.headers.get("content-length")).toBe("120000");
      expect(Buffer.from(await resumed.arrayBuffer()).equals(fresh), validator).toBe(true);
    }
    // A range past the new end with a stale validator is no 416: the whole file.
    expect((await download(operationId, "resume.bin", { range: "bytes=130000-", "if-range": oldTag })).status).toBe(200);
    // If-Range alone (no Range) changes nothing; the RPC applies the same rule.
    expect((await download(operationId, "resume.bin", { "if-range": oldTag })).status).toBe(200);
    const chunks: Uint8Array[] = [];
    for await (const m of c.operations.downloadArtifact({ operationId, name: "resume.bin", offset: 100_000n, ifRange: oldTag })) if (m.item.case === "chunk") chunks.push(m.item.value);
    expect(Buffer.concat(chunks).equals(fresh)).toBe(true);
  });

  it("refuses a fenced worker's upload with LEASE_LOST, over RPC and PUT, storing nothing", async () => {
    const { operationId, task } = await leased("art-fenced");
    // The lease ends: the task completes, so the token no longer holds it.
    await c.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: {} } });
    const err = await expectCode(c.workers.uploadArtifact(uploadMessages(task, "late.bin", randomBytes(10))), Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/not leased/);
    const refused = await put(task, "late.txt", Buffer.from("late"));
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { code: string }).code).toBe("failed_precondition");
    expect((await c.operations.listArtifacts({ operationId })).artifacts).toHaveLength(0);
    const { rows: uploads } = await sql<{ n: string }>`select count(*) as n from artifacts where operation_id = ${operationId}`.execute(server.app.database.db);
    expect(Number(uploads[0]!.n)).toBe(0);
  });

  it("refuses an artifact over ANVIL_MAX_ARTIFACT_BYTES: declared (at once) or streamed, RESOURCE_EXHAUSTED / 413", async () => {
    const { operationId, task } = await leased("art-limit");
    const big = randomBytes(maxArtifactBytes + 1);
    await expectCode(c.workers.uploadArtifact(uploadMessages(task, "big.bin", big)), Code.ResourceExhausted);
    // Declaring less than it sends does not get past the limit either.
    await expectCode(c.workers.uploadArtifact(uploadMessages(task, "big.bin", big, { sizeBytes: 10n })), Code.InvalidArgument);
    const over = await put(task, "big.bin", big);
    expect(over.status).toBe(413);
    expect((await c.operations.listArtifacts({ operationId })).artifacts).toHaveLength(0);
    const { rows } = await sql<{ n: string }>`select count(*) as n from artifacts where operation_id = ${operationId}`.execute(server.app.database.db);
    expect(Number(rows[0]!.n)).toBe(0);
  });

  it("is invisible to another tenant: NOT_FOUND over REST and RPC", async () => {
    const { operationId, task } = await leased("art-tenant");
    expect((await put(task, "mine.txt", Buffer.from("secret"))).status).toBe(201);
    const globex = await server.token("globex-admin");
    const res = await download(operationId, "mine.txt", {}, globex);
    expect(res.status).toBe(404);
    const other = clientFor(OperationService, "connect-json", server.baseUrl, globex);
    await expectCode(other.listArtifacts({ operationId }), Code.NotFound);
    const stream = async () => {
      for await (const _ of other.downloadArtifact({ operationId, name: "mine.txt" }));
    };
    await expectCode(stream(), Code.NotFound);
    // Nor can another tenant's worker upload for the task, even with its lease token.
    const globexWorker = clientFor(WorkerService, "grpc", server.baseUrl, globex);
    await expectCode(globexWorker.uploadArtifact(uploadMessages(task, "x.bin", randomBytes(1))), Code.NotFound);
  });

  it("audits an upload with its header, the lease token redacted", async () => {
    const { task } = await leased("art-audit");
    expect((await put(task, "audited.txt", Buffer.from("a"))).status).toBe(201);
    await until(async () => {
      const { rows } = await sql<{ parameters: Record<string, unknown> }>`select parameters from audit_events where method = 'anvil.operations.v1.WorkerService/UploadArtifact'`.execute(server.app.database.db);
      return rows.some((r) => JSON.stringify(r.parameters).includes("audited.txt"));
    }, 10_000, "the upload's audit event");
    const { rows } = await sql<{ parameters: Record<string, unknown> }>`select parameters from audit_events where method = 'anvil.operations.v1.WorkerService/UploadArtifact'`.execute(server.app.database.db);
    expect(JSON.stringify(rows)).not.toContain(task.leaseToken);
  });

  it("housekeeping deletes an upload abandoned mid-way (its gateway died), with its chunks, and leaves live ones", async () => {
    const { operationId, task } = await leased("art-abandoned");
    const db = server.app.database.db;
    const stale = crypto.randomUUID();
    const live = crypto.randomUUID();
    for (const [id, age] of [[stale, "2 hours"], [live, "1 minute"]] as const) {
      await sql`insert into artifacts (tenant_id, id, operation_id, task_id, name, content_type, chunk_bytes, state, update_time)
        values ('acme', ${id}, ${operationId}, ${task.id}, 'half.bin', 'application/octet-stream', 61440, 'uploading', now() - ${age}::interval)`.execute(db);
      await sql`insert into artifact_chunks (tenant_id, artifact_id, seq, data) values ('acme', ${id}, 0, ${Buffer.from("half")})`.execute(db);
    }
    const left = async (id: string) => Number((await sql<{ n: string }>`select count(*) as n from artifact_chunks where artifact_id = ${id}`.execute(db)).rows[0]!.n);
    await until(async () => (await left(stale)) === 0, 20_000, "the abandoned upload to be deleted");
    expect(await left(live)).toBe(1);
  });

  it("is deleted with its operation by housekeeping", async () => {
    const { operationId, task } = await leased("art-retention");
    await c.workers.uploadArtifact(uploadMessages(task, "gone.bin", randomBytes(300_000)));
    await c.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: {} } });
    const count = async (table: "artifacts" | "artifact_chunks") => {
      const q =
        table === "artifacts"
          ? sql<{ n: string }>`select count(*) as n from artifacts where operation_id = ${operationId}`
          : sql<{ n: string }>`select count(*) as n from artifact_chunks c join artifacts a on a.tenant_id = c.tenant_id and a.id = c.artifact_id where a.operation_id = ${operationId}`;
      return Number((await q.execute(server.app.database.db)).rows[0]!.n);
    };
    expect(await count("artifact_chunks")).toBe(Math.ceil(300_000 / (60 * 1024)));
    const { rows: ids } = await sql<{ id: string }>`select id from artifacts where operation_id = ${operationId}`.execute(server.app.database.db);
    await until(async () => (await count("artifacts")) === 0, 20_000, "the operation's artifacts to be deleted");
    const { rows } = await sql<{ n: string }>`select count(*) as n from artifact_chunks where artifact_id in (${sql.join(ids.map((r) => r.id))})`.execute(server.app.database.db);
    expect(Number(rows[0]!.n)).toBe(0);
    expect((await download(operationId, "gone.bin")).status).toBe(404);
  });
});

/**
 * A PUT upload whose body is sent `pieces` times `pieceBytes`, one piece
 * every `everyMs`, stalling `stallMs` before the last piece; over HTTP/1.1
 * or HTTP/2. Resolves with the answer's status, or "cut" when the server
 * closed the connection or reset the stream instead.
 */
async function slowPut(
  protocol: "http1" | "http2",
  port: number,
  task: Task,
  token: string,
  { pieces, pieceBytes, everyMs, stallMs = 0 }: { pieces: number; pieceBytes: number; everyMs: number; stallMs?: number },
): Promise<number | "cut"> {
  const headers = { authorization: `Bearer ${token}`, "anvil-lease-token": task.leaseToken, "content-type": "application/octet-stream", "content-length": String(pieces * pieceBytes) };
  const path = `/v1/tasks/${task.id}/artifacts/slow.bin`;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  if (protocol === "http1") {
    const req = http.request({ host: "127.0.0.1", port, path, method: "PUT", headers, agent: false });
    const answer = new Promise<number | "cut">((resolve) => {
      req.on("response", (res) => (res.resume(), resolve(res.statusCode!)));
      req.on("error", () => resolve("cut"));
    });
    for (let i = 0; i < pieces && !req.destroyed; i++) {
      if (i === pieces - 1) await sleep(stallMs);
      req.write(randomBytes(pieceBytes));
      await sleep(everyMs);
    }
    req.end();
    return answer;
  }
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => undefined);
  try {
    const stream = session.request({ ":method": "PUT", ":path": path, ...headers });
    const answer = new Promise<number | "cut">((resolve) => {
      stream.on("response", (h) => resolve(Number(h[":status"])));
      stream.on("close", () => resolve("cut"));
      stream.on("error", () => resolve("cut"));
    });
    stream.resume();
    for (let i = 0; i < pieces && !stream.destroyed; i++) {
      if (i === pieces - 1) await sleep(stallMs);
      stream.write(randomBytes(pieceBytes));
      await sleep(everyMs);
    }
    if (!stream.destroyed) stream.end();
    return await answer;
  } finally {
    session.close();
  }
}

describe("slow uploads against ANVIL_REQUEST_TIMEOUT_MS (PostgreSQL)", () => {
  let server: TestServer;
  let c: OperationClients;
  let worker: string;
  beforeAll(async () => {
    // A 1 s request limit: every upload below takes 3 s or more.
    server = await startServer("postgres", { env: { ANVIL_HEADERS_TIMEOUT_MS: "500", ANVIL_REQUEST_TIMEOUT_MS: "1000", ANVIL_BODY_IDLE_TIMEOUT_MS: "700" } });
    c = await operationClients(server, "grpc");
    worker = await server.token("acme-worker");
  });
  afterAll(() => server?.close());

  async function task(kindName: string): Promise<Task> {
    await runWorkflow(c, [{ name: "only", kind: kindName }]);
    return (await claim(c, `w-${kindName}`, { kinds: [kindName], leaseMs: 60_000 }))!;
  }

  it.each(["http1", "http2"] as const)("lets a slow but steady upload run past the request limit, and cuts one that stalls longer than the idle limit (%s)", async (protocol) => {
    const t = await task(`slow-${protocol}`);
    // 3 s of 16 KiB every 100 ms: three times the request limit, never idle for long.
    const steady = await slowPut(protocol, server.port, t, worker, { pieces: 30, pieceBytes: 16 * 1024, everyMs: 100 });
    expect(steady).toBe(201);
    expect((await c.operations.listArtifacts({ operationId: t.operationId })).artifacts.map((a) => a.sizeBytes)).toEqual([30n * 16n * 1024n]);
    // Steady for 1.5 s, then silent for 1.5 s: cut (408 or a reset), and nothing new is stored.
    const t2 = await task(`stall-${protocol}`);
    const stalled = await slowPut(protocol, server.port, t2, worker, { pieces: 16, pieceBytes: 16 * 1024, everyMs: 100, stallMs: 1_500 });
    expect([408, "cut"]).toContain(stalled);
    await until(async () => (await c.operations.listArtifacts({ operationId: t2.operationId })).artifacts.length === 0, 5_000, "no artifact stored");
  });

  it("lets a slow but steady gRPC client-stream upload run past the request limit too", async () => {
    const t = await task("slow-grpc");
    async function* slowly(): AsyncGenerator<UploadArtifactRequest> {
      for await (const m of uploadMessages(t, "slow.bin", randomBytes(30 * 16 * 1024), { piece: 16 * 1024 })) {
        yield m;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const { artifact } = await c.workers.uploadArtifact(slowly());
    expect(artifact!.sizeBytes).toBe(30n * 16n * 1024n);
  });

  it("still cuts a body nobody streams (an unauthenticated upload, a JSON call) at the request limit", async () => {
    const t = await task("slow-anon");
    const anonymous = await slowPut("http1", server.port, t, "not-a-token", { pieces: 30, pieceBytes: 1024, everyMs: 100 });
    // Refused from its headers (401) before its body is read; either way never stored.
    expect([401, "cut"]).toContain(anonymous);
    const editor = await server.token("acme-editor");
    const start = Date.now();
    const json = await new Promise<number | "cut">((resolve) => {
      const req = http.request({ host: "127.0.0.1", port: server.port, path: "/anvil.operations.v1.OperationService/ListOperations", method: "POST", agent: false, headers: { "content-type": "application/json", authorization: `Bearer ${editor}`, "content-length": "100000" } });
      req.on("response", (res) => (res.resume(), resolve(res.statusCode!)));
      req.on("error", () => resolve("cut"));
      const timer = setInterval(() => (req.destroyed ? clearInterval(timer) : req.write(" ")), 50);
      req.on("close", () => clearInterval(timer));
    });
    expect([408, "cut"]).toContain(json);
    expect(Date.now() - start).toBeLessThan(1_000 + 2_000);
  });
});
