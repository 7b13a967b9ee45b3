import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Operation_State, OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { Workflow_State, WorkflowService } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { clientFor, transportFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gateway-process.js";
import { until } from "./support/operations.js";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./support/otlp-receiver.js";

// OTLP's span kinds.
const SERVER = 2;
const CLIENT = 3;
const CONSUMER = 5;
const slackNanos = 2_000_000n;

/** OTEL_* settings of a process exporting to `receiver` quickly (the batch processor waits 5 s by default). */
function otelEnv(receiver: OtlpReceiver, service: string): Record<string, string> {
  return { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: service, OTEL_BSP_SCHEDULE_DELAY: "100" };
}

/** A caller's own span, as a W3C traceparent naming it (sampled). */
function callerSpan(): { traceId: string; spanId: string; traceparent: string } {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

describe.each(databaseKinds)("traces on %s", (kind) => {
  let receiver: OtlpReceiver;
  let gateway: GatewayProcess;
  let worker: ChildProcess | undefined;
  const workerOutput: string[] = [];

  const spansOf = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);
  const one = (spans: ReceivedSpan[], what: (s: ReceivedSpan) => boolean, label: string): ReceivedSpan => {
    const found = spans.filter(what);
    expect(found, `${label} among ${spans.map((s) => `${s.service}:${s.name}`).join(", ")}`).toHaveLength(1);
    return found[0]!;
  };
  const childrenOf = (spans: ReceivedSpan[], parent: ReceivedSpan) => spans.filter((s) => s.parentSpanId === parent.spanId);

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    gateway = await startGatewayProcess(kind, { env: otelEnv(receiver, "anvil-gateway") });
    // A loaded shared machine can take most of a minute to start a gateway on the embedded database.
  }, 180_000);
  afterAll(async () => {
    if (worker && worker.exitCode === null) {
      const exited = new Promise((resolve) => worker!.once("exit", resolve));
      worker.kill("SIGTERM");
      await exited;
    }
    await gateway?.close();
    await receiver?.close();
  });

  it("follows RunWorkflow into a worker process and back: one trace, parents right, SQL by statement name only", async () => {
    const secret = `s3cr3t-${randomBytes(6).toString("hex")}`;
    const editor = await gateway.token("acme-editor");
    const workflows = clientFor(WorkflowService, "connect-json", gateway.baseUrl, editor);
    const workflow = (
      await workflows.createWorkflow({
        workflow: { displayName: secret, state: Workflow_State.ACTIVE, steps: [{ name: "only", kind: "demo", config: { seconds: 0.3, steps: 2, note: secret } }] },
      })
    ).workflow!;
    const caller = callerSpan();
    const traced = clientFor(WorkflowService, "connect-json", gateway.baseUrl, { authorization: `Bearer ${editor}`, traceparent: caller.traceparent });
    const operation = (await traced.runWorkflow({ id: workflow.id })).operation!;

    // The reference worker, in its own process, exporting to the same receiver.
    const args = ["--import", "tsx", "src/cli/worker.ts", "--url", gateway.baseUrl, "--token", await gateway.token("acme-worker"), "--kinds", "demo", "--lease", "5"];
    worker = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...otelEnv(receiver, "anvil-worker") } });
    worker.stdout!.on("data", (c: Buffer) => workerOutput.push(c.toString()));
    worker.stderr!.on("data", (c: Buffer) => workerOutput.push(c.toString()));
    const operations = clientFor(OperationService, "connect-json", gateway.baseUrl, editor);
    await until(async () => (await operations.getOperation({ id: operation.id })).operation!.state === Operation_State.SUCCEEDED, 60_000, `the operation to succeed (worker: ${workerOutput.join("")})`);
    const isCompleteServer = (s: ReceivedSpan) => s.service === "anvil-gateway" && s.kind === SERVER && s.name === "anvil.operations.v1.WorkerService/CompleteTask";
    await until(() => spansOf(caller.traceId).some(isCompleteServer) && spansOf(caller.traceId).some((s) => s.name === "process demo"), 30_000, "the worker's and CompleteTask's spans");

    const trace = spansOf(caller.traceId);
    // The gateway's server span is a child of the caller's span.
    const run = one(trace, (s) => s.name === "anvil.workflows.v1.WorkflowService/RunWorkflow", "the RunWorkflow span");
    expect(run).toMatchObject({ service: "anvil-gateway", kind: SERVER, parentSpanId: caller.spanId, statusCode: 0 });
    expect(run.attributes).toMatchObject({
      "rpc.system": "connect_rpc",
      "rpc.service": "anvil.workflows.v1.WorkflowService",
      "rpc.method": "RunWorkflow",
      "server.address": "127.0.0.1",
      "server.port": gateway.port,
      "network.peer.address": "127.0.0.1",
      "network.protocol.version": "1.1",
    });
    // Its unit of work, and the statements inside it, named and never with values.
    const transaction = one(childrenOf(trace, run), (s) => s.name === "transaction", "RunWorkflow's transaction");
    const statements = childrenOf(trace, transaction);
    expect(statements.map((s) => s.name)).toEqual(expect.arrayContaining(["insert operations", "insert tasks"]));
    for (const s of statements) {
      expect(s.kind).toBe(CLIENT);
      expect(s.attributes["db.system.name"]).toBe("postgresql");
      expect(s.attributes["db.query.summary"]).toBe(s.name);
      // Within the transaction's time (the SDK anchors each span to the wall clock to the millisecond).
      expect(s.startNanos >= transaction.startNanos - slackNanos && s.endNanos <= transaction.endNanos + slackNanos).toBe(true);
    }
    // The worker's span for the task continues the RunWorkflow span, across processes.
    const processed = one(trace, (s) => s.name === "process demo", "the worker's task span");
    expect(processed).toMatchObject({ service: "anvil-worker", kind: CONSUMER, parentSpanId: run.spanId });
    expect(processed.attributes).toMatchObject({ "anvil.operation.id": operation.id, "anvil.task.kind": "demo" });
    one(childrenOf(trace, processed), (s) => s.name === "execute demo", "the handler's span");
    // The worker's CompleteTask call, and the gateway's server span for it.
    const completeCall = one(trace, (s) => s.service === "anvil-worker" && s.kind === CLIENT && s.name.endsWith("/CompleteTask"), "the worker's CompleteTask call");
    expect(completeCall.parentSpanId).toBe(processed.spanId);
    const completeServer = one(trace, isCompleteServer, "the CompleteTask server span");
    expect(completeServer.parentSpanId).toBe(completeCall.spanId);
    const completeTx = one(childrenOf(trace, completeServer), (s) => s.name === "transaction", "CompleteTask's transaction");
    // The completion reads its task, then finishes it among its siblings in one statement written as SQL text,
    // named by its repository; a summary, but no single operation or table to name.
    expect(childrenOf(trace, completeTx).map((s) => s.name)).toEqual(expect.arrayContaining(["select tasks", "tasks.finishAllAmong", "operations.record"]));
    const finish = one(childrenOf(trace, completeTx), (s) => s.name === "tasks.finishAllAmong", "the completion's finish");
    expect(finish.attributes).toMatchObject({ "db.system.name": "postgresql", "db.query.summary": "tasks.finishAllAmong" });
    expect(finish.attributes["db.operation.name"]).toBeUndefined();
    // The StreamTasks call that handed the task out is a trace of its own, linked to RunWorkflow's span;
    // its span ends (and is exported) with the stream, when the worker stops.
    const handedOut = (s: ReceivedSpan) =>
      s.kind === SERVER && s.name === "anvil.operations.v1.WorkerService/StreamTasks" && s.links.some((l) => l.traceId === caller.traceId && l.spanId === run.spanId);
    worker.kill("SIGTERM");
    await until(() => receiver.spans.some(handedOut), 20_000, "the StreamTasks span, once the worker stopped");
    expect(receiver.spans.filter(handedOut)).toHaveLength(1);
    // Progress reports of the handler are in the trace too, below its span.
    const execute = one(trace, (s) => s.name === "execute demo", "execute");
    const reports = trace.filter((s) => s.service === "anvil-worker" && s.name.endsWith("/ReportProgress") && s.parentSpanId === execute.spanId);
    expect(reports.length).toBeGreaterThanOrEqual(1);
    expect(trace.some((s) => s.kind === SERVER && s.name.endsWith("/ReportProgress") && reports.some((r) => r.spanId === s.parentSpanId))).toBe(true);
    // Neither the parameters nor the task's input reach any span.
    expect(JSON.stringify(receiver.spans.map((s) => s.attributes))).not.toContain(secret);
    expect(receiver.spans.some((s) => s.attributes["db.query.text"] !== undefined)).toBe(false);
  });

  it("takes traceparent from gRPC metadata on the fast path, from REST headers, and from a Connect stream", async () => {
    const editor = await gateway.token("acme-editor");
    const workflows = clientFor(WorkflowService, "connect-json", gateway.baseUrl, editor);
    const workflow = (await workflows.createWorkflow({ workflow: { displayName: "traced", state: Workflow_State.ACTIVE, steps: [] } })).workflow!;

    const viaGrpc = callerSpan();
    const grpc = clientFor(WorkflowService, "grpc", gateway.baseUrl, { authorization: `Bearer ${editor}`, traceparent: viaGrpc.traceparent, tracestate: "vendor=abc" });
    await grpc.getWorkflow({ id: workflow.id });
    await expectCode(grpc.getWorkflow({ id: "00000000-0000-4000-8000-000000000000" }), Code.NotFound);

    const viaRest = callerSpan();
    const rest = await fetch(`${gateway.baseUrl}/v1/workflows/${workflow.id}`, { headers: { authorization: `Bearer ${editor}`, traceparent: viaRest.traceparent } });
    expect(rest.status).toBe(200);

    const viaStream = callerSpan();
    const run = await workflows.runWorkflow({ id: workflow.id });
    const stream = createClient(
      OperationService,
      transportFor("connect-json", gateway.baseUrl, { authorization: `Bearer ${editor}`, traceparent: viaStream.traceparent }),
    );
    for await (const _ of stream.watchOperation({ id: run.operation!.id })) void _;

    // Server spans end last (after their statements'), and may come in a later export.
    const servers = (traceId: string) => spansOf(traceId).filter((s) => s.kind === SERVER).length;
    await until(() => servers(viaGrpc.traceId) >= 2 && servers(viaRest.traceId) >= 1 && servers(viaStream.traceId) >= 1, 30_000, "the server spans");
    const grpcSpans = spansOf(viaGrpc.traceId).filter((s) => s.kind === SERVER);
    expect(grpcSpans).toHaveLength(2);
    for (const s of grpcSpans) {
      expect(s).toMatchObject({ name: "anvil.workflows.v1.WorkflowService/GetWorkflow", parentSpanId: viaGrpc.spanId, traceState: "vendor=abc" });
      expect(s.attributes).toMatchObject({ "rpc.system": "grpc", "rpc.service": "anvil.workflows.v1.WorkflowService", "rpc.method": "GetWorkflow", "network.protocol.version": "2" });
    }
    // A caller's error (NOT_FOUND) is a status code, not a server failure.
    expect(grpcSpans.map((s) => s.attributes["rpc.grpc.status_code"]).sort()).toEqual([0, 5]);
    expect(grpcSpans.every((s) => s.statusCode === 0)).toBe(true);
    // A statement's span under the read, by name.
    expect(spansOf(viaGrpc.traceId).some((s) => s.kind === CLIENT && s.name === "select workflows" && grpcSpans.some((g) => g.spanId === s.parentSpanId))).toBe(true);

    const restSpan = one(spansOf(viaRest.traceId), (s) => s.kind === SERVER, "the REST span");
    expect(restSpan).toMatchObject({ name: "anvil.workflows.v1.WorkflowService/GetWorkflow", parentSpanId: viaRest.spanId });
    expect(restSpan.attributes).toMatchObject({ "http.request.method": "GET", "http.route": "/v1/workflows/{id}", "anvil.protocol": "rest" });

    const streamSpan = one(spansOf(viaStream.traceId), (s) => s.kind === SERVER, "the stream's span");
    expect(streamSpan).toMatchObject({ name: "anvil.operations.v1.OperationService/WatchOperation", parentSpanId: viaStream.spanId });
    expect(streamSpan.attributes["rpc.system"]).toBe("connect_rpc");
  });

  it("keeps concurrent calls apart: each call's transaction and statements sit under its own server span", async () => {
    // The gateway hands each call's trace context down explicitly (no AsyncLocalStorage): calls in flight
    // together on one connection must still each get their own statements, and none of another's.
    const editor = await gateway.token("acme-editor");
    const callers = Array.from({ length: 12 }, () => callerSpan());
    const created = await Promise.all(
      callers.map((caller, i) =>
        clientFor(WorkflowService, "grpc", gateway.baseUrl, { authorization: `Bearer ${editor}`, traceparent: caller.traceparent }).createWorkflow({
          workflow: { displayName: `concurrent ${i}`, state: Workflow_State.ACTIVE, steps: [] },
        }),
      ),
    );
    const readers = Array.from({ length: 12 }, () => callerSpan());
    await Promise.all(
      readers.map((caller, i) =>
        clientFor(WorkflowService, "connect-json", gateway.baseUrl, { authorization: `Bearer ${editor}`, traceparent: caller.traceparent }).getWorkflow({
          id: created[i]!.workflow!.id,
        }),
      ),
    );
    const settled = (caller: { traceId: string }) => spansOf(caller.traceId).some((s) => s.kind === SERVER);
    await until(() => [...callers, ...readers].every(settled), 30_000, "every call's server span");
    for (const caller of [...callers, ...readers]) {
      const spans = spansOf(caller.traceId);
      const server = one(spans, (s) => s.kind === SERVER, "the call's server span");
      expect(server.parentSpanId).toBe(caller.spanId);
      // Every span of the trace hangs from a span of the same trace: none was filed under another call.
      const ids = new Set([caller.spanId, ...spans.map((s) => s.spanId)]);
      for (const s of spans) expect(ids.has(s.parentSpanId), `${s.name}'s parent in its own trace`).toBe(true);
    }
    for (const caller of callers) {
      const spans = spansOf(caller.traceId);
      const server = one(spans, (s) => s.kind === SERVER, "CreateWorkflow's server span");
      const transaction = one(childrenOf(spans, server), (s) => s.name === "transaction", "CreateWorkflow's transaction");
      expect(childrenOf(spans, transaction).filter((s) => s.name === "insert workflows")).toHaveLength(1);
    }
    for (const reader of readers) {
      const spans = spansOf(reader.traceId);
      const server = one(spans, (s) => s.kind === SERVER, "GetWorkflow's server span");
      // A statement compiled once (the point read) is filed under its call as a built one is.
      expect(childrenOf(spans, server).map((s) => s.name)).toEqual(["select workflows"]);
    }
  });
});

describe("without an OTLP endpoint", () => {
  it("registers no SDK: the API stays the no-op one", async () => {
    const { tracingWanted, startTracing, tracingEnabled } = await import("../src/tracing/tracing.js");
    expect(tracingWanted({})).toBe(false);
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://x", OTEL_SDK_DISABLED: "true" })).toBe(false);
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://x", OTEL_TRACES_EXPORTER: "none" })).toBe(false);
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://x/v1/traces" })).toBe(true);
    expect(await startTracing("anvil", {})).toBeUndefined();
    expect(tracingEnabled()).toBe(false);
    const { trace } = await import("@opentelemetry/api");
    expect(trace.getTracer("anvil").startSpan("x").isRecording()).toBe(false);
  });
});
