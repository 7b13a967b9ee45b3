import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OperationService, WorkerService } from "../gen/anvil/operations/v1/operations_pb.js";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { WebhookService } from "../gen/anvil/webhooks/v1/webhooks_pb.js";
import { listenMetrics } from "../src/metrics/metrics-server.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { prometheusBinary, type Prometheus, startPrometheus } from "./support/prometheus.js";
import { claim, operationClients, runWorkflow, watchWith } from "./support/operations.js";
import { startServer, type TestServer } from "./support/server.js";

const metricsToken = "scrape-secret";
// grpc_server_handling_seconds' buckets, to compute the quantile the test expects the way Prometheus does.
const durationBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What the test did, per series: calls by labels, and client-measured durations. */
class Tally {
  readonly calls = new Map<string, { labels: Record<string, string>; n: number }>();
  record(labels: Record<string, string>): void {
    const key = JSON.stringify(labels);
    const entry = this.calls.get(key) ?? { labels, n: 0 };
    entry.n++;
    this.calls.set(key, entry);
  }
}

function codeName(err: unknown): string {
  if (err === undefined) return "OK";
  return Code[ConnectError.from(err).code]!;
}

async function outcome(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return "OK";
  } catch (err) {
    return codeName(err);
  }
}

function selector(labels: Record<string, string>): string {
  return `{job="anvil",${Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",")}}`;
}

/** The q-quantile of `values` as histogram_quantile computes it from these buckets (linear within a bucket). */
function bucketedQuantile(q: number, values: readonly number[]): number {
  const rank = q * values.length;
  let below = 0;
  let lower = 0;
  for (const upper of durationBuckets) {
    const inBucket = values.filter((v) => v > lower && v <= upper).length;
    if (below + inBucket >= rank) return lower + (upper - lower) * ((rank - below) / inBucket);
    below += inBucket;
    lower = upper;
  }
  return lower;
}

async function eventually<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await read();
  while (!ok(last)) {
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
    last = await read();
  }
  return last;
}

describe.each(databaseKinds)("metrics scraped by a real Prometheus on %s", (kind) => {
  let server: TestServer;
  let prometheus: Prometheus;

  beforeAll(async () => {
    prometheusBinary("prometheus");
    server = await startServer(kind, { env: { ANVIL_METRICS_TOKEN: metricsToken } });
    prometheus = await startPrometheus({ target: `127.0.0.1:${server.port}`, bearerToken: metricsToken, scrapeIntervalSeconds: 1 });
    // The target is up and the pre-initialised series were scraped at zero before any traffic.
    await eventually("target up", () => prometheus.query('up{job="anvil"}'), (r) => r[0]?.value[1] === "1");
    await eventually(
      "pre-initialised series",
      () => prometheus.query(`grpc_server_handled_total${selector({ grpc_method: "ClaimTask", protocol: "grpc_web", grpc_code: "OK" })}`),
      (r) => r[0]?.value[1] === "0",
    );
  });

  afterAll(async () => {
    await prometheus?.stop();
    await server?.close();
  });

  it("refuses a scrape without the metrics token, and needs no API token with it", async () => {
    expect((await fetch(`${server.baseUrl}/metrics`)).status).toBe(401);
    expect((await fetch(`${server.baseUrl}/metrics`, { headers: { authorization: "Bearer wrong-token!" } })).status).toBe(401);
    const res = await fetch(`${server.baseUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
  });

  it("has every method's series from start, REST by route template", async () => {
    // go-grpc-prometheus's names of the method kinds.
    const grpcTypes = { unary: "unary", server_streaming: "server_stream", client_streaming: "client_stream", bidi_streaming: "bidi_stream" } as const;
    const text = await (await fetch(`${server.baseUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })).text();
    for (const service of [UserService, OperationService, WorkerService]) {
      for (const method of service.methods) {
        for (const protocol of ["grpc", "grpc_web", "connect"]) {
          expect(text).toContain(
            `grpc_server_started_total{grpc_type="${grpcTypes[method.methodKind]}",grpc_service="${service.typeName}",grpc_method="${method.name}",protocol="${protocol}",http_route=""} `,
          );
        }
      }
    }
    expect(text).toContain('grpc_method="GetUser",protocol="rest",http_route="GET /v1/users/{id}"');
    // The artifact routes, which are not transcoded, by their templates too.
    expect(text).toContain('grpc_method="UploadArtifact",protocol="rest",http_route="PUT /v1/tasks/{task_id}/artifacts/{name}"');
    expect(text).toContain('grpc_method="DownloadArtifact",protocol="rest",http_route="GET /v1/operations/{operation_id}/artifacts/{name}"');
    // HEAD, which sends no content, apart from the download.
    expect(text).toContain('grpc_method="DownloadArtifact",protocol="rest",http_route="HEAD /v1/operations/{operation_id}/artifacts/{name}"');
    // Webhook deliveries under their own protocol, for each RPC a delivery may call.
    for (const method of ["RunWorkflow", "ExecuteIpa", "CorrelateAlert"]) expect(text).toContain(`grpc_method="${method}",protocol="webhook",http_route="POST /hooks/{id}"`);
    // process and event-loop defaults
    expect(text).toContain("process_cpu_seconds_total");
    expect(text).toContain("nodejs_eventloop_lag_seconds");
  });

  it("counts every call on every path exactly, and Prometheus's increase and histogram_quantile agree with the calls made", async () => {
    const tally = new Tally();
    const admin = await server.token();
    const worker = await server.token("acme-worker");
    const unary = (service: string, method: string, protocol: string, code: string, route = "") =>
      tally.record({ grpc_service: service, grpc_method: method, protocol, http_route: route, grpc_code: code });

    // Connect JSON on the fast unary path.
    const connectUsers = clientFor(UserService, "connect-json", server.baseUrl, admin);
    for (let i = 0; i < 7; i++) unary("anvil.users.v1.UserService", "ListUsers", "connect", await outcome(() => connectUsers.listUsers({})));
    // gRPC over HTTP/2, answered by the service with an error.
    const grpcUsers = clientFor(UserService, "grpc", server.baseUrl, admin);
    for (let i = 0; i < 5; i++) unary("anvil.users.v1.UserService", "GetUser", "grpc", await outcome(() => grpcUsers.getUser({ id: randomUUID() })));
    // REST: counted by route template; the ids never become labels.
    const restIds: string[] = [];
    for (let i = 0; i < 4; i++) {
      const id = randomUUID();
      restIds.push(id);
      const res = await fetch(`${server.baseUrl}/v1/users/${id}`, { headers: { authorization: `Bearer ${admin}` } });
      const body = (await res.json()) as { code?: string };
      unary("anvil.users.v1.UserService", "GetUser", "rest", res.ok ? "OK" : codeName(new ConnectError("", codeFromJson(body.code))), "GET /v1/users/{id}");
    }
    // Refused by the interceptors (no token) on the fast path.
    const anonymous = clientFor(UserService, "connect-binary", server.baseUrl);
    for (let i = 0; i < 3; i++) unary("anvil.users.v1.UserService", "ListUsers", "connect", await outcome(() => anonymous.listUsers({})));
    // Refused before its body, by connect's universal handler (a server stream).
    const anonymousOps = clientFor(OperationService, "connect-json", server.baseUrl);
    for (let i = 0; i < 2; i++) {
      unary(
        "anvil.operations.v1.OperationService",
        "WatchOperation",
        "connect",
        await outcome(async () => {
          for await (const _ of anonymousOps.watchOperation({ id: randomUUID() })) void _;
        }),
      );
    }
    // HEAD of an artifact, without a token: under its own route label, not the download's.
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${server.baseUrl}/v1/operations/${randomUUID()}/artifacts/report.txt`, { method: "HEAD" });
      expect(res.status).toBe(401);
      unary("anvil.operations.v1.OperationService", "DownloadArtifact", "rest", "Unauthenticated", "HEAD /v1/operations/{operation_id}/artifacts/{name}");
    }
    // A webhook delivery without its signature headers: counted under protocol webhook, as the audit log names it.
    const webhooks = clientFor(WebhookService, "connect-json", server.baseUrl, await server.token("acme-editor"));
    const hook = (await webhooks.createWebhook({ webhook: { displayName: "metrics", target: { case: "correlateAlert", value: { maxResults: 1 } } } })).webhook!;
    unary("anvil.webhooks.v1.WebhookService", "CreateWebhook", "connect", "OK");
    const delivery = await fetch(`${server.baseUrl}/hooks/${hook.id}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(delivery.status).toBe(401);
    unary("anvil.findings.v1.FindingService", "CorrelateAlert", "webhook", "Unauthenticated", "POST /hooks/{id}");
    // Long polls of known length over gRPC-Web, for the duration histogram.
    const workers = clientFor(WorkerService, "grpc-web", server.baseUrl, worker);
    const waits = [120, 150, 180, 200, 220, 260, 300, 340, 380, 420];
    const measured: number[] = [];
    for (const ms of waits) {
      const start = performance.now();
      const code = await outcome(() => workers.claimTask({ kinds: ["metrics-test"], workerId: "w1", maxWait: { seconds: 0n, nanos: ms * 1e6 } }));
      measured.push((performance.now() - start) / 1000);
      unary("anvil.operations.v1.WorkerService", "ClaimTask", "grpc_web", code);
    }
    const codes = [...tally.calls.values()].map((c) => c.labels.grpc_code);
    expect(codes).toContain("NotFound");
    expect(codes).toContain("Unauthenticated");

    // A scrape that times out on a loaded machine marks every series stale until the next one succeeds: a point
    // query then finds nothing for a moment, which says nothing about the counts. Ask again until the series is there.
    const present = (query: string, time?: number) =>
      eventually(query, () => prometheus.query(query, time), (r) => r.length > 0);
    // The raw counters equal the calls made, once Prometheus has scraped them.
    let lastTimestamp = 0;
    for (const { labels, n } of tally.calls.values()) {
      const handled = await eventually(
        `grpc_server_handled_total${selector(labels)}`,
        () => prometheus.query(`grpc_server_handled_total${selector(labels)}`),
        (r) => r.length === 1 && Number(r[0]!.value[1]) === n,
      );
      expect(Number(handled[0]!.value[1])).toBe(n);
    }
    const sumBy = new Map<string, { labels: Record<string, string>; n: number }>();
    for (const { labels, n } of tally.calls.values()) {
      const { grpc_code: _, ...rest } = labels;
      const key = JSON.stringify(rest);
      sumBy.set(key, { labels: rest, n: (sumBy.get(key)?.n ?? 0) + n });
    }
    for (const { labels, n } of sumBy.values()) {
      const started = await present(`grpc_server_started_total${selector(labels)}`);
      expect(Number(started[0]!.value[1]), JSON.stringify(labels)).toBe(n);
      const count = await present(`grpc_server_handling_seconds_count${selector(labels)}`);
      expect(Number(count[0]!.value[1]), JSON.stringify(labels)).toBe(n);
      const stamp = await present(`timestamp(grpc_server_started_total${selector(labels)})`);
      lastTimestamp = Math.max(lastTimestamp, Number(stamp[0]!.value[1]));
    }
    // No label value anywhere carries an id the test sent.
    const series = (await (await fetch(`${prometheus.url}/api/v1/series?match[]={job="anvil"}`)).json()) as { data: Record<string, string>[] };
    const values = JSON.stringify(series.data);
    for (const id of restIds) expect(values).not.toContain(id);

    // increase() and histogram_quantile(), evaluated at the last scrape (rate extrapolates, so within a tolerance).
    const claims = { grpc_method: "ClaimTask", protocol: "grpc_web" };
    const increase = await present(`sum(increase(grpc_server_handled_total${selector(claims)}[10m]))`, lastTimestamp);
    expect(Math.abs(Number(increase[0]!.value[1]) - waits.length)).toBeLessThanOrEqual(waits.length * 0.1);
    // Each claim took at least its max_wait on the server and at most what the client measured, and
    // histogram_quantile is monotone in the observations: Prometheus's quantile lies between the same
    // quantile computed (with the same buckets) from the waits and from the client's measurements.
    for (const q of [0.5, 0.9]) {
      const result = await present(
        `histogram_quantile(${q}, sum by (le) (increase(grpc_server_handling_seconds_bucket${selector(claims)}[10m])))`,
        lastTimestamp,
      );
      const fromPrometheus = Number(result[0]!.value[1]);
      const low = bucketedQuantile(q, waits.map((ms) => ms / 1000));
      const high = bucketedQuantile(q, measured);
      const context = `p${q * 100}: Prometheus ${fromPrometheus}, waits ${low}, client ${high}`;
      expect(fromPrometheus, context).toBeGreaterThanOrEqual(low * 0.95);
      expect(fromPrometheus, context).toBeLessThanOrEqual(high * 1.05);
    }
    // Sizes: every call observed once, with bytes on the wire.
    const responseBytes = await present(`grpc_server_response_bytes_sum${selector(claims)}`);
    expect(Number(responseBytes[0]!.value[1])).toBeGreaterThan(0);
    const requestCount = await present(`grpc_server_request_bytes_count${selector(claims)}`);
    expect(Number(requestCount[0]!.value[1])).toBe(waits.length);
  });

  it("reports the database pool, statements by name, and the operations queue", async () => {
    const scrape = async () => (await fetch(`${server.baseUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })).text();
    const value = (text: string, series: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const c = await operationClients(server);
    const kind = "demo";
    const operation = await runWorkflow(c, [{ name: "only", kind }]);
    const watch = watchWith(c.operations, operation.id);
    // Depth comes from a snapshot cached for 5 s: within a few seconds it shows the queued task.
    await eventually("queued depth", async () => value(await scrape(), `anvil_operations_queue_tasks{kind="${kind}",state="queued"}`), (v) => v === 1, 15_000);
    let text = await scrape();
    expect(value(text, `anvil_operations_queue_oldest_age_seconds{kind="${kind}"}`)).toBeGreaterThanOrEqual(0);
    expect(value(text, "anvil_operations_watch_streams")).toBe(1);
    expect(value(text, "anvil_operations_claim_waits")).toBe(0);
    const idle = claim(c, "w-idle", { kinds: ["nothing-comes"], waitMs: 3_000 });
    await eventually("a waiting claim", async () => value(await scrape(), "anvil_operations_claim_waits"), (v) => v === 1, 5_000);
    expect(await idle).toBeUndefined();
    await eventually("the claim's slot released", async () => value(await scrape(), "anvil_operations_claim_waits"), (v) => v === 0, 5_000);
    expect(value(text, "anvil_db_pool_connections")).toBeGreaterThanOrEqual(1);
    expect(value(text, "anvil_db_pool_idle_connections")).toBeGreaterThanOrEqual(0);
    expect(value(text, "anvil_db_pool_waiting_requests")).toBe(0);
    const task = await claim(c, "w-metrics", { kinds: [kind], waitMs: 2_000 });
    expect(task).toBeDefined();
    await c.workers.completeTask({ taskId: task!.id, leaseToken: task!.leaseToken, outcome: { case: "result", value: {} } });
    watch.cancel();
    await watch.done;
    text = await scrape();
    expect(value(text, `anvil_operations_task_claims_total{kind="${kind}"}`)).toBe(1);
    expect(value(text, 'anvil_operations_completions_total{outcome="succeeded"}')).toBe(1);
    expect(value(text, 'anvil_operations_completions_total{outcome="failed"}')).toBe(0);
    await eventually("watch closed", async () => value(await scrape(), "anvil_operations_watch_streams"), (v) => v === 0, 5_000);
    // Statements by name: built ones by kind and first table, SQL text by the name its repository gave it
    // (the claim's append, the completion's finish), transaction control by itself; no value the test sent reaches a label.
    for (const statement of ["insert operations", "select tasks", "operations.appendClaims", "tasks.finishAllAmong", "begin", "commit"]) {
      expect(text).toMatch(new RegExp(`anvil_db_statement_seconds_count\\{statement="${statement}",outcome="ok"\\} [1-9]`));
    }
    expect(text).not.toContain(operation.id);
    // A lease that expires: the next claim returns it to the queue for a retry.
    const second = await runWorkflow(c, [{ name: "only", kind }]);
    const lost = await claim(c, "w-gone", { kinds: [kind], waitMs: 2_000, leaseMs: 1_000 });
    expect(lost?.operationId).toBe(second.id);
    await new Promise((r) => setTimeout(r, 1_200));
    await claim(c, "w-next", { kinds: [kind], waitMs: 0 });
    text = await scrape();
    expect(value(text, `anvil_operations_lease_expiries_total{kind="${kind}"}`)).toBe(1);
    expect(value(text, `anvil_operations_task_retries_total{kind="${kind}"}`)).toBe(1);
    expect(value(text, "anvil_db_transaction_conflicts_total")).toBe(0);
    expect(value(text, "anvil_db_unavailable_total")).toBe(0);
  });

  it("passes promtool check metrics", async () => {
    const text = await (await fetch(`${server.baseUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })).text();
    const out = execFileSync(prometheusBinary("promtool"), ["check", "metrics"], { input: text, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
    expect(out.trim()).toBe("");
  });
});

describe("metrics on a port of their own", () => {
  it("serves /metrics there and not on the API port", async () => {
    const server = await startServer(databaseKinds[0]!, { env: { ANVIL_METRICS_PORT: "0" } });
    const metrics = await listenMetrics(server.app.metricsRoute, 0, "127.0.0.1");
    try {
      expect((await fetch(`${server.baseUrl}/metrics`)).status).toBe(404);
      const res = await fetch(`http://127.0.0.1:${metrics.port}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("grpc_server_started_total");
    } finally {
      await metrics.close();
      await server.close();
    }
  });
});

/** A Connect error JSON's code name (`not_found`) as a Code. */
function codeFromJson(name: string | undefined): Code {
  const camel = (name ?? "unknown").replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());
  return (Code as unknown as Record<string, Code>)[camel] ?? Code.Unknown;
}
