import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LogLine_Level } from "../gen/anvil/operations/v1/operations_pb.js";
import { launchChromium, withPage } from "./support/browser.js";
import { claim, type OperationClients, operationClients, runWorkflow, until } from "./support/operations.js";
import { startServer, type TestServer } from "./support/server.js";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.js";

/**
 * The page a browser app would be: served by a second local server, so the
 * gateway is another origin (host and port differ) and every event stream
 * request goes through CORS. Its script watches an operation with
 * EventSource or WebSocket and records what arrives on `window.seen`.
 */
const page = `<!doctype html><html><head><meta charset="utf-8"><title>watch</title></head><body><script>
window.seen = { events: [], opens: 0, errors: 0, closes: [], state: -1 };
window.watchSse = (url) => {
  const source = new EventSource(url);
  window.source = source;
  source.onopen = () => { window.seen.opens++; };
  source.onerror = () => { window.seen.errors++; window.seen.state = source.readyState; };
  for (const type of ["operation", "progress", "log", "stage", "completion", "error"]) {
    source.addEventListener(type, (e) => window.seen.events.push({ type, id: e.lastEventId, connection: window.seen.opens, data: JSON.parse(e.data) }));
  }
};
window.watchWs = (base) => {
  let last = 0;
  const open = () => {
    const ws = new WebSocket(base + (last > 0 ? "&after_sequence=" + last : ""));
    ws.onopen = () => { window.seen.opens++; };
    ws.onmessage = (m) => { const msg = JSON.parse(m.data); window.seen.events.push(msg); last = msg.sequence; };
    // Anything but a normal end is a lost connection: resume after the last sequence seen.
    ws.onclose = (c) => { window.seen.closes.push(c.code); if (c.code !== 1000) setTimeout(open, 100); };
  };
  open();
};
</script></body></html>`;

// Browser suites run on PostgreSQL only (CI time); the test support provides it.
describe("a browser on another origin watching operations live", () => {
  let pages: Server;
  let origin: string;
  let server: TestServer;
  let proxy: TcpProxy;
  let browser: Browser;
  let c: OperationClients;
  let viewer: string;
  let kinds = 0;

  beforeAll(async () => {
    pages = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(page);
    });
    await new Promise<void>((resolve) => pages.listen(0, "127.0.0.1", resolve));
    // `localhost` for the page, `127.0.0.1` for the gateway: two origins.
    origin = `http://localhost:${(pages.address() as AddressInfo).port}`;
    server = await startServer("postgres", { env: { ANVIL_CORS_ORIGINS: origin, ANVIL_OPERATIONS_POLL_MS: "200" } });
    // The browser reaches the gateway through a proxy the test can cut.
    proxy = await startTcpProxy(server.port);
    browser = await launchChromium();
    c = await operationClients(server);
    viewer = await server.token("acme-viewer");
  });
  afterAll(async () => {
    await browser?.close();
    await proxy?.close();
    await server?.close();
    await new Promise((resolve) => pages?.close(resolve));
  });

  /** Runs one operation whose only task the test's worker progresses: the task's lease and the operation. */
  async function started() {
    const kind = `browser-${++kinds}`;
    const operation = await runWorkflow(c, [{ name: "only", kind }]);
    const task = (await claim(c, "browser-worker", { kinds: [kind] }))!;
    return { operation, lease: { taskId: task.id, leaseToken: task.leaseToken } };
  }

  const seen = (p: Page) => p.evaluate(() => (window as unknown as { seen: Seen }).seen);
  const lastSequence = async (id: string) => Number((await c.operations.getOperation({ id })).operation!.lastSequence);

  it("EventSource: streams to completion, reconnects by itself after a drop with Last-Event-ID, nothing missed or repeated", async () => {
    await withPage(browser, "eventsource", async (p) => {
      await p.goto(origin);
      const { operation, lease } = await started();
      const gateway = `http://127.0.0.1:${proxy.port}`;
      await p.evaluate((url) => (window as unknown as { watchSse(u: string): void }).watchSse(url), `${gateway}/v1/operations/${operation.id}:watch?access_token=${viewer}`);
      await c.workers.reportProgress({ ...lease, progress: 0.25, stage: "cloning", logs: [{ level: LogLine_Level.INFO, message: "first" }] });
      await until(async () => (await seen(p)).events.filter((e) => e.type !== "operation").length >= 3, 15_000, "three events in the page");

      // The network drops: EventSource notices, and reconnects on its own sending Last-Event-ID.
      expect(proxy.dropAll()).toBeGreaterThan(0);
      await until(async () => (await seen(p)).errors >= 1, 10_000, "the page noticing the drop");
      await c.workers.reportProgress({ ...lease, progress: 0.6, logs: [{ level: LogLine_Level.WARN, message: "while away" }] });
      await until(async () => (await seen(p)).opens >= 2, 15_000, "EventSource reconnecting");
      await c.workers.reportProgress({ ...lease, progress: 0.9, message: "almost" });
      await c.workers.completeTask({ ...lease, outcome: { case: "result", value: { answer: 42 } } });
      // After the final event the stream ends; the reconnect that follows is answered 204, which closes the EventSource.
      await until(async () => (await seen(p)).state === 2, 15_000, "EventSource closed by the 204");

      const got = await seen(p);
      const total = await lastSequence(operation.id);
      // An event without an `id:` line (the operation) keeps the previous lastEventId, so events are told apart by type.
      const sequenced = got.events.filter((e) => e.type !== "operation");
      expect(sequenced.map((e) => Number(e.id))).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(sequenced.every((e) => e.data.sequence === e.id)).toBe(true);
      // The second connection resumed where the first left off.
      const resumedAt = got.events.findIndex((e) => e.connection === 2);
      expect(Number(got.events[resumedAt + 1]!.id)).toBe(Number(got.events[resumedAt - 1]!.id) + 1);
      expect(sequenced.at(-1)!.type).toBe("completion");
      expect(sequenced.map((e) => e.type)).toEqual(expect.arrayContaining(["stage", "log", "progress", "completion"]));
      // Each connection starts with the operation as it is (no id, so it never moves Last-Event-ID).
      expect(got.events.filter((e) => e.type === "operation").length).toBe(2);
      expect(got.opens).toBe(2);
    });
  });

  it("WebSocket: streams typed messages to completion, resumes after a drop with after_sequence, nothing missed or repeated", async () => {
    await withPage(browser, "websocket", async (p) => {
      await p.goto(origin);
      const { operation, lease } = await started();
      const base = `ws://127.0.0.1:${proxy.port}/ws/operations/${operation.id}?access_token=${viewer}`;
      await p.evaluate((url) => (window as unknown as { watchWs(u: string): void }).watchWs(url), base);
      await until(async () => (await seen(p)).opens >= 1, 10_000, "the socket opening");
      await c.workers.reportProgress({ ...lease, progress: 0.25, stage: "cloning", logs: [{ level: LogLine_Level.INFO, message: "first" }] });
      await until(async () => (await seen(p)).events.length >= 3, 15_000, "three messages in the page");

      expect(proxy.dropAll()).toBeGreaterThan(0);
      await c.workers.reportProgress({ ...lease, progress: 0.6, logs: [{ level: LogLine_Level.WARN, message: "while away" }] });
      await until(async () => (await seen(p)).opens >= 2, 15_000, "the page reopening its socket");
      await c.workers.completeTask({ ...lease, outcome: { case: "result", value: { answer: 42 } } });
      await until(async () => (await seen(p)).closes.includes(1000), 15_000, "the socket closing with 1000 after completion");

      const got = await seen(p);
      const total = await lastSequence(operation.id);
      expect(got.events.map((m) => m.sequence)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(got.events.every((m) => m.operation_id === operation.id && typeof m.timestamp === "string")).toBe(true);
      expect(got.events.at(-1)).toMatchObject({ type: "completion", status: "succeeded", result: { steps: { only: { answer: 42 } } } });
      expect(got.events.map((m) => m.type)).toEqual(expect.arrayContaining(["progress", "log", "completion"]));
      expect(got.closes[0]).not.toBe(1000);
      expect(got.closes.at(-1)).toBe(1000);
    });
  });
});

interface Seen {
  // biome-ignore lint: SSE events and WebSocket messages are JSON of several shapes.
  events: Array<Record<string, any>>;
  opens: number;
  errors: number;
  closes: number[];
  state: number;
}
