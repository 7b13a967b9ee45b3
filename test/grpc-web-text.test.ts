// Google's own `grpc-web` client, in its default text mode
// (application/grpc-web-text), in headless Chromium on another origin:
// unary and server streaming through the gateway's base64 translation.
// PostgreSQL only, to keep CI time.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { build } from "esbuild";
import { GetOperationRequestSchema, GetOperationResponseSchema } from "../gen/anvil/operations/v1/operations_pb.js";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, withPage } from "./support/browser.js";
import { claim, type OperationClients, operationClients, runWorkflow } from "./support/operations.js";
import { startServer, type TestServer } from "./support/server.js";
import { suitePostgres } from "./support/suite-postgres.js";

/** A static origin of its own serving the test page and its bundle. */
async function servePage(): Promise<{ origin: string; server: Server }> {
  const bundle = await build({ entryPoints: ["test/browser/grpc-web-page.ts"], bundle: true, write: false, format: "iife", platform: "browser", target: "chrome110", logLevel: "silent" });
  const script = bundle.outputFiles[0]!.contents;
  const server = createServer((req, res) => {
    if (req.url === "/page.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(script);
      return;
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end('<!doctype html><html><head><script src="/page.js"></script></head><body>grpc-web</body></html>');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** Base64 text made of pieces padded on their own, decoded a group at a time. */
function fromBase64Groups(text: string): Buffer {
  const groups: Buffer[] = [];
  for (let i = 0; i < text.length; i += 4) groups.push(Buffer.from(text.slice(i, i + 4), "base64"));
  return Buffer.concat(groups);
}

describe("Google's grpc-web client in text mode, in Chromium, on PostgreSQL", () => {
  let postgres: Awaited<ReturnType<typeof suitePostgres>>;
  let page: { origin: string; server: Server };
  let server: TestServer;
  let browser: Browser;
  let c: OperationClients;
  beforeAll(async () => {
    postgres = await suitePostgres();
    page = await servePage();
    // The page's origin is another port, so every call is cross-origin (CORS preflights included).
    server = await startServer("postgres", { database: postgres.database, env: { ANVIL_CORS_ORIGINS: page.origin } });
    c = await operationClients(server);
    browser = await launchChromium();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    page?.server.close();
    await postgres?.close();
  });

  it("calls a unary method and gets its answer, and an error with its code", async () => {
    const operation = await runWorkflow(c, [{ name: "only", kind: "gwt-unary" }]);
    const token = await server.token("acme-viewer");
    await withPage(browser, "grpc-web-text-unary", async (p) => {
      const types: string[] = [];
      p.on("request", (r) => {
        if (r.url().startsWith(server.baseUrl) && r.method() === "POST") types.push(r.headers()["content-type"] ?? "");
      });
      await p.goto(page.origin);
      await p.waitForFunction(() => window.ready === true);
      const ok = await p.evaluate(([base, t, id]) => window.getOperation(base!, t!, id!), [server.baseUrl, token, operation.id]);
      expect(ok.error, JSON.stringify(ok.error)).toBeUndefined();
      expect(ok.ok).toMatchObject({ operation: { id: operation.id, kind: "workflow.run", state: "STATE_QUEUED" } });
      const missing = await p.evaluate(([base, t, id]) => window.getOperation(base!, t!, id!), [server.baseUrl, token, crypto.randomUUID()]);
      expect(missing.error?.code).toBe(5); // NOT_FOUND
      const refused = await p.evaluate(([base, id]) => window.getOperation(base!, "not-a-token", id!), [server.baseUrl, operation.id]);
      expect(refused.error?.code).toBe(16); // UNAUTHENTICATED
      // The client's default mode: every call was gRPC-Web text.
      expect(types).toEqual(["application/grpc-web-text", "application/grpc-web-text", "application/grpc-web-text"]);
    });
  });

  it("decodes a body split mid-group and sent as several padded pieces, and answers in base64 with its trailers", async () => {
    const operation = await runWorkflow(c, [{ name: "only", kind: "gwt-raw" }]);
    const request = toBinary(GetOperationRequestSchema, create(GetOperationRequestSchema, { id: operation.id }));
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, request.byteLength]), request]);
    // Two pieces, each padded on its own, then cut into 3-character chunks.
    const text = frame.subarray(0, 7).toString("base64") + frame.subarray(7).toString("base64");
    expect(text.slice(0, 12)).toContain("=");
    async function* chunks() {
      for (let i = 0; i < text.length; i += 3) yield new TextEncoder().encode(text.slice(i, i + 3));
    }
    const res = await fetch(`${server.baseUrl}/anvil.operations.v1.OperationService/GetOperation`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web-text", "x-grpc-web": "1", authorization: `Bearer ${await server.token("acme-viewer")}` },
      body: chunks() as unknown as BodyInit,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/grpc-web-text+proto");
    // Decoded 4-character group by group, as the grpc-web client does: each chunk was padded on its own.
    const body = fromBase64Groups(await res.text());
    const length = body.readUInt32BE(1);
    expect(body[0]).toBe(0);
    expect(fromBinary(GetOperationResponseSchema, body.subarray(5, 5 + length)).operation!.id).toBe(operation.id);
    // The trailers frame (flag 0x80) follows, with grpc-status 0.
    expect(body[5 + length]).toBe(0x80);
    expect(body.subarray(10 + length).toString()).toMatch(/grpc-status: ?0/);

    const garbage = await fetch(`${server.baseUrl}/anvil.operations.v1.OperationService/GetOperation`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web-text", authorization: `Bearer ${await server.token("acme-viewer")}` },
      body: "not base64!",
    });
    expect(fromBase64Groups(await garbage.text()).toString() + (garbage.headers.get("grpc-status") ?? "")).toMatch(/grpc-status: ?3|^3$/m);
  });

  it("watches an operation live to its completion (server streaming), and resumes after a sequence", async () => {
    const operation = await runWorkflow(c, [{ name: "only", kind: "gwt-watch" }]);
    const token = await server.token("acme-viewer");
    await withPage(browser, "grpc-web-text-watch", async (p) => {
      await p.goto(page.origin);
      await p.waitForFunction(() => window.ready === true);
      const watching = p.evaluate(([base, t, id]) => window.watchOperation(base!, t!, id!, 0), [server.baseUrl, token, operation.id]);
      // The work happens while the browser watches.
      const task = (await claim(c, "gwt-worker", { kinds: ["gwt-watch"] }))!;
      for (const progress of [0.25, 0.5, 0.75]) await c.workers.reportProgress({ taskId: task.id, leaseToken: task.leaseToken, progress, message: `at ${progress}` });
      await c.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: { done: true } } });
      const watched = await watching;
      expect(watched.error).toBeUndefined();
      const [first, ...rest] = watched.messages as Array<{ operation?: { id: string }; event?: { sequence: string; completion?: { state: string }; progress?: { progress: number } } }>;
      expect(first!.operation!.id).toBe(operation.id);
      const events = rest.filter((m) => m.event).map((m) => m.event!);
      const sequences = events.map((e) => Number(e.sequence));
      expect(sequences).toEqual(sequences.map((_, i) => i + 1));
      expect(events.flatMap((e) => (e.progress ? [e.progress.progress] : []))).toEqual(expect.arrayContaining([0.25, 0.5, 0.75]));
      expect(events.at(-1)!.completion!.state).toBe("STATE_SUCCEEDED");

      // Resuming after the third event sends the rest, each once.
      const resumed = await p.evaluate(([base, t, id]) => window.watchOperation(base!, t!, id!, 3), [server.baseUrl, token, operation.id]);
      const again = (resumed.messages as Array<{ event?: { sequence: string } }>).filter((m) => m.event).map((m) => Number(m.event!.sequence));
      expect(again).toEqual(sequences.slice(3));
    });
  }, 60_000);
});
