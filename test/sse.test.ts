import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LogLine_Level, OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { claim, eventsOf, type OperationClients, operationClients, runWorkflow, sequencesOf, until, watchWith } from "./support/operations.js";
import { captureLog } from "./support/log-capture.js";
import { startServer, type TestServer } from "./support/server.js";
import { type EventStream, openEventStream } from "./support/sse.js";

const run = promisify(execFile);

describe.each(databaseKinds)("server-sent events on %s", (kind) => {
  let server: TestServer;
  let c: OperationClients;
  let viewer: string;
  const { log, lines: logs } = captureLog();
  let kinds = 0;
  const freshKind = () => `sse-${++kinds}`;
  const watchUrl = (id: string, query = "") => `${server.baseUrl}/v1/operations/${id}:watch${query}`;
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    server = await startServer(kind, {
      env: {
        ANVIL_OPERATIONS_POLL_MS: "200",
        ANVIL_WATCH_KEEPALIVE_MS: "300",
        ANVIL_MAX_STREAMS_PER_PRINCIPAL: "5",
        ANVIL_CORS_ORIGINS: "https://app.example",
      },
      // Every log line at every level, to check no credential ever reaches one.
      log,
    });
    c = await operationClients(server);
    viewer = await server.token("acme-viewer");
  });
  afterAll(() => server?.close());

  /** Runs an operation's only task to completion: stage, log, two progress reports, a result. */
  async function drive(k: string): Promise<void> {
    const task = (await claim(c, "w1", { kinds: [k] }))!;
    const lease = { taskId: task.id, leaseToken: task.leaseToken };
    await c.workers.reportProgress({ ...lease, progress: 0.25, stage: "cloning", logs: [{ level: LogLine_Level.INFO, message: "line one\nline two" }] });
    await c.workers.reportProgress({ ...lease, progress: 0.75, message: "almost" });
    await c.workers.completeTask({ ...lease, outcome: { case: "result", value: { answer: 42 } } });
  }

  it("streams an operation live to completion as Connect would: the operation first, then each event with its sequence as id and its kind as event", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const sse = await openEventStream(watchUrl(op.id), { ...bearer(viewer), origin: "https://app.example" });
    expect(sse.status).toBe(200);
    expect(sse.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(sse.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(sse.headers.get("cache-control")).toContain("no-cache");
    const rpc = watchWith(clientFor(OperationService, "connect-json", server.baseUrl, viewer), op.id);
    await until(() => sse.events.length >= 2 && rpc.messages.length >= 2, 10_000, "both watches to start");
    await drive(k);
    await sse.done;
    expect(await rpc.done).toBeUndefined();

    const [first, ...rest] = sse.events;
    expect(first).toMatchObject({ id: undefined, event: "operation" });
    expect(JSON.parse(first!.data)).toMatchObject({ id: op.id, state: "STATE_QUEUED" });
    // Exactly the events the RPC streams, in proto JSON as Connect JSON sends them.
    expect(rest.map((e) => e.data)).toEqual(eventsOf(rpc.messages));
    expect(rest.map((e) => Number(e.id))).toEqual(sequencesOf(rpc.messages));
    expect(rest.map((e) => e.event)).toEqual(rest.map((e) => Object.keys(JSON.parse(e.data)).find((f) => ["progress", "log", "stage", "completion", "error"].includes(f))));
    expect(rest.map((e) => e.event)).toContain("log");
    expect(rest.at(-1)!.event).toBe("completion");
    expect(JSON.parse(rest.at(-1)!.data).completion).toMatchObject({ state: "STATE_SUCCEEDED", result: { steps: { only: { answer: 42 } } } });
  });

  it("resumes after a forced disconnect with Last-Event-ID or after_sequence, nothing missed or repeated, and answers 204 at or past the end", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const first = await openEventStream(watchUrl(op.id), bearer(viewer));
    const task = (await claim(c, "w1", { kinds: [k] }))!;
    const lease = { taskId: task.id, leaseToken: task.leaseToken };
    await c.workers.reportProgress({ ...lease, progress: 0.2 });
    await until(() => first.events.filter((e) => e.id !== undefined).length >= 3, 10_000, "three events");
    first.close();
    await first.done;
    const seen = first.events.filter((e) => e.id !== undefined).map((e) => Number(e.id));
    // Work goes on while the client is away.
    await c.workers.reportProgress({ ...lease, progress: 0.6, logs: [{ level: LogLine_Level.WARN, message: "slow" }] });
    const half = await openEventStream(watchUrl(op.id, "?after_sequence=0"), { ...bearer(viewer), "last-event-id": String(seen.at(-1)) });
    await until(() => half.events.some((e) => e.event === "log"), 10_000, "the log written while away");
    half.close();
    await half.done;
    const seenAgain = half.events.filter((e) => e.id !== undefined).map((e) => Number(e.id));
    await c.workers.completeTask({ ...lease, outcome: { case: "result", value: {} } });
    const rest = await openEventStream(watchUrl(op.id, `?after_sequence=${seenAgain.at(-1)}`), bearer(viewer));
    await rest.done;
    const all = [...seen, ...seenAgain, ...rest.events.filter((e) => e.id !== undefined).map((e) => Number(e.id))];
    const total = Number((await c.operations.getOperation({ id: op.id })).operation!.lastSequence);
    expect(all).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(rest.events.at(-1)!.event).toBe("completion");

    // At or past the final sequence: 204, so EventSource stops reconnecting (Last-Event-ID wins over the query).
    for (const headers of [{ "last-event-id": String(total) }, { "last-event-id": String(total + 5) }]) {
      const again = await openEventStream(watchUrl(op.id, "?after_sequence=1"), { ...bearer(viewer), ...headers });
      expect(again.status).toBe(204);
    }
    expect((await openEventStream(watchUrl(op.id, `?after_sequence=${total}`), bearer(viewer))).status).toBe(204);
    const bad = await openEventStream(watchUrl(op.id), { ...bearer(viewer), "last-event-id": "seven" });
    expect(bad.status).toBe(400);
    expect(JSON.parse(await bad.text)).toMatchObject({ code: "invalid_argument" });
  });

  it("sends keep-alives as comment lines while idle", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: freshKind() }]);
    const sse = await openEventStream(watchUrl(op.id), bearer(viewer));
    await until(() => sse.comments.some((line) => line.startsWith("keep-alive")), 10_000, "a keep-alive comment");
    sse.close();
    await c.operations.cancelOperation({ id: op.id });
  });

  it("takes the credential as an access_token query parameter on the streaming route only, and never logs it", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    const token = await server.token("acme-viewer", { sub: "query-param" });
    const sse = await openEventStream(watchUrl(op.id, `?access_token=${token}`));
    expect(sse.status).toBe(200);
    await until(() => sse.events.length >= 2, 10_000, "the stream to start");
    await drive(k);
    await sse.done;
    expect(sse.events.at(-1)!.event).toBe("completion");
    // Refusals: a bad token, a token sent twice, and a unary route, which takes no credential in its query.
    expect((await openEventStream(watchUrl(op.id, "?access_token=not-a-token"))).status).toBe(401);
    expect((await openEventStream(watchUrl(op.id, `?access_token=${token}`), bearer(token))).status).toBe(401);
    expect((await openEventStream(watchUrl(op.id, `?access_token=${token}&access_token=${token}`))).status).toBe(401);
    const unary = await fetch(`${server.baseUrl}/v1/operations/${op.id}?access_token=${token}`);
    expect(unary.status).toBe(401);
    const unaryWithHeader = await fetch(`${server.baseUrl}/v1/operations/${op.id}?access_token=${token}`, { headers: bearer(viewer) });
    expect(unaryWithHeader.status).toBe(400);
    await until(() => logs.some((l) => l.includes('"rpc":"anvil.operations.v1.OperationService/WatchOperation"') && l.includes('"code":"ok"')), 5_000, "the access log line");
    const text = logs.join("");
    expect(text).toContain("WatchOperation");
    expect(text).not.toContain(token);
    expect(text).not.toContain(token.split(".")[2]!);
  });

  it("applies the method's rules: no credential 401, no permission 403, another tenant's operation 404, unknown id 404, the stream cap 429", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: freshKind() }]);
    const status = async (url: string, headers: Record<string, string> = {}) => {
      const s = await openEventStream(url, headers);
      const body = await s.text;
      s.close();
      return { status: s.status, body };
    };
    expect((await status(watchUrl(op.id))).status).toBe(401);
    expect((await status(watchUrl(op.id), bearer(await server.token("acme-worker")))).status).toBe(403);
    const other = await status(watchUrl(op.id), bearer(await server.token("globex-admin")));
    expect(other.status).toBe(404);
    expect(JSON.parse(other.body)).toMatchObject({ code: "not_found" });
    expect((await status(watchUrl("00000000-0000-4000-8000-000000000000"), bearer(viewer))).status).toBe(404);
    expect((await status(watchUrl("not-a-uuid"), bearer(viewer))).status).toBe(400);
    // The per-credential cap counts event streams like RPC streams.
    const capped = await server.token("acme-viewer", { sub: "capped" });
    const open: EventStream[] = [];
    for (let i = 0; i < 5; i++) open.push(await openEventStream(watchUrl(op.id), bearer(capped)));
    expect(open.map((s) => s.status)).toEqual([200, 200, 200, 200, 200]);
    const refused = await status(watchUrl(op.id), bearer(capped));
    expect(refused.status).toBe(429);
    const rpc = watchWith(clientFor(OperationService, "connect-json", server.baseUrl, capped), op.id);
    expect(await rpc.done).toMatchObject({ rawMessage: expect.stringContaining("at most 5") });
    for (const s of open) s.close();
    await c.operations.cancelOperation({ id: op.id });
  });

  it("is described in /openapi.json as text/event-stream", async () => {
    const doc = (await (await fetch(`${server.baseUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }>; parameters: { name: string; in: string }[] }>> };
    const get = doc.paths["/v1/operations/{id}:watch"]!.get!;
    expect(Object.keys(get.responses["200"]!.content!)).toEqual(["text/event-stream"]);
    expect(get.responses["204"]).toBeDefined();
    expect(get.parameters.map((p) => `${p.in}:${p.name}`)).toEqual(expect.arrayContaining(["query:access_token", "header:Last-Event-ID", "query:after_sequence"]));
  });

  it("works with curl -N", async () => {
    const k = freshKind();
    const op = await runWorkflow(c, [{ name: "only", kind: k }]);
    await drive(k);
    const { stdout } = await run("curl", ["-N", "-sS", "--max-time", "30", "-H", `Authorization: Bearer ${viewer}`, watchUrl(op.id)]);
    const blocks = stdout.split("\n\n").filter((b) => b.trim() !== "");
    expect(blocks[0]).toMatch(/^event: operation\ndata: \{/);
    expect(blocks.at(-1)).toMatch(/^id: \d+\nevent: completion\ndata: \{/);
  });

  // Last: drains the shared server.
  it("ends open streams when the instance drains, so clients reconnect elsewhere", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: freshKind() }]);
    const sse = await openEventStream(watchUrl(op.id), bearer(viewer));
    await until(() => sse.events.length >= 1, 10_000, "the stream to start");
    server.app.drain();
    await sse.done;
    expect(sse.comments.at(-1)).toMatch(/^end Unavailable: /);
  });
});
