import { randomBytes } from "node:crypto";
import { type Context, context, type Span, type SpanOptions, trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Workflow_State, WorkflowService } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { startTracing, type TracingHandle, tracer } from "../src/tracing/tracing.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { until } from "./support/operations.js";
import { type OtlpReceiver, startOtlpReceiver } from "./support/otlp-receiver.js";
import { startServer, type TestServer } from "./support/server.js";

// The SDK is registered in this file's own process (vitest forks one per
// file), sampling no new trace (OTEL_TRACES_SAMPLER, read by the SDK as in
// production), so the spans a call starts can be counted where they start.
let receiver: OtlpReceiver;
let tracing: TracingHandle | undefined;
const sampler = { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0", OTEL_BSP_SCHEDULE_DELAY: "100" };

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  Object.assign(process.env, sampler, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint });
  tracing = await startTracing("anvil-sampling");
  expect(tracing).toBeDefined();
});
afterAll(async () => {
  await tracing?.shutdown();
  for (const name of [...Object.keys(sampler), "OTEL_EXPORTER_OTLP_ENDPOINT"]) delete process.env[name];
  await receiver?.close();
});

/** A caller's W3C traceparent, sampled or not. */
function traceparent(sampled: boolean): { traceId: string; value: string } {
  const traceId = randomBytes(16).toString("hex");
  return { traceId, value: `00-${traceId}-${randomBytes(8).toString("hex")}-${sampled ? "01" : "00"}` };
}

describe.each(databaseKinds)("sampling on %s", (kind) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer(kind);
  }, 180_000);
  afterAll(async () => {
    await server?.close();
  });

  it("starts only the server span of a call left out (no unit-of-work or statement span), and exports the whole tree of a call the caller sampled", async () => {
    const editor = await server.token("acme-editor");
    // Every span started in the traces of the calls left out, and whether its parent was the caller's (remote) span.
    const unsampled = [traceparent(false), traceparent(false)];
    const startedBelow: Array<{ name: string; remoteParent: boolean }> = [];
    const record = (name: string, parentContext: Context | undefined) => {
      const parent = trace.getSpan(parentContext ?? context.active())?.spanContext();
      if (parent !== undefined && unsampled.some((u) => u.traceId === parent.traceId)) startedBelow.push({ name, remoteParent: parent.isRemote === true });
    };
    const startSpan = tracer.startSpan.bind(tracer);
    const startActiveSpan = tracer.startActiveSpan.bind(tracer) as (name: string, options: SpanOptions, fn: (span: Span) => unknown) => unknown;
    const spans = vi.spyOn(tracer, "startSpan").mockImplementation((name, options, ctx) => (record(name, ctx), startSpan(name, options, ctx)));
    const activeSpans = vi.spyOn(tracer, "startActiveSpan").mockImplementation(((name: string, options: SpanOptions, fn: (span: Span) => unknown) => (
      record(name, undefined), startActiveSpan(name, options, fn)
    )) as typeof tracer.startActiveSpan);
    try {
      // A write (a unit of work and its statements) and a read, from callers that did not sample.
      const writer = clientFor(WorkflowService, "connect-json", server.baseUrl, { authorization: `Bearer ${editor}`, traceparent: unsampled[0]!.value });
      const created = (await writer.createWorkflow({ workflow: { displayName: "unsampled", state: Workflow_State.ACTIVE, steps: [] } })).workflow!;
      await clientFor(WorkflowService, "grpc", server.baseUrl, { authorization: `Bearer ${editor}`, traceparent: unsampled[1]!.value }).getWorkflow({ id: created.id });
    } finally {
      spans.mockRestore();
      activeSpans.mockRestore();
    }
    expect(startedBelow).toEqual([
      { name: "anvil.workflows.v1.WorkflowService/CreateWorkflow", remoteParent: true },
      { name: "anvil.workflows.v1.WorkflowService/GetWorkflow", remoteParent: true },
    ]);

    // A caller that sampled: parent-based sampling keeps the call, its unit of work and its statements.
    const sampled = traceparent(true);
    const traced = clientFor(WorkflowService, "connect-json", server.baseUrl, { authorization: `Bearer ${editor}`, traceparent: sampled.value });
    await traced.createWorkflow({ workflow: { displayName: "sampled", state: Workflow_State.ACTIVE, steps: [] } });
    const inTrace = () => receiver.spans.filter((s) => s.traceId === sampled.traceId);
    await until(() => inTrace().some((s) => s.name.endsWith("/CreateWorkflow")), 30_000, "the sampled call's spans");
    const call = inTrace().find((s) => s.name.endsWith("/CreateWorkflow"))!;
    const transaction = inTrace().find((s) => s.name === "transaction" && s.parentSpanId === call.spanId);
    expect(transaction, inTrace().map((s) => s.name).join(", ")).toBeDefined();
    // Its statements, client spans below the transaction.
    expect(inTrace().filter((s) => s.kind === 3 && s.parentSpanId === transaction!.spanId).length).toBeGreaterThan(0);
    // Nothing of the calls left out was exported: every span received belongs to the sampled trace.
    expect(receiver.spans.filter((s) => s.service === "anvil-sampling" && s.traceId !== sampled.traceId)).toEqual([]);
    receiver.spans.length = 0;
  });
});
