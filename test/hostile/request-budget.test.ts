// What one request may make the gateway decode and say back: free-form JSON
// (google.protobuf.Struct) is bounded in values and depth before it is
// decoded, on every protocol, and an error fits gRPC trailers whatever the
// request held, so a client always reads INVALID_ARGUMENT.
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/anvil/agents/v1/agents_pb.js";
import { IpaService } from "../../gen/anvil/ipas/v1/ipas_pb.js";
import { WorkerService } from "../../gen/anvil/operations/v1/operations_pb.js";
import { WorkflowService } from "../../gen/anvil/workflows/v1/workflows_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { errorBudget } from "../../src/rpc/error-mapping.js";
import { maxMaskPaths } from "../../src/rpc/validation/field-rules.js";
import { structLimits } from "../../src/rpc/validation/struct-budget.js";
import { maxJsonMembers, scanJsonObjects } from "../../src/server/json-objects.js";
import { clientFor, protocols } from "../support/clients.js";
import { databaseKinds } from "../support/databases.js";
import { expectCode } from "../support/expect-code.js";
import { startServer, type TestServer } from "../support/server.js";

const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
const nested = (depth: number) => {
  let x: JsonObject = { leaf: 1 };
  for (let i = 1; i < depth; i++) x = { a: x };
  return x;
};
const uuid = "6f1b7e1e-0c4a-4d0e-9f5e-000000000001";

describe("duplicate member names in JSON", () => {
  it.each([
    ['{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}', undefined],
    ['{"a":1,"a":2}', "a"],
    ['{"x":{"b":1,"b":2}}', "b"],
    ['{"\\u0061":1,"a":2}', "a"],
    ['{"s":"\\"a\\":1,\\"a\\":2","a":[",\\\\"]}', undefined],
    ['{"s":"\\\\","s":1}', "s"],
  ])("%s → %s", (text, expected) => {
    JSON.parse(text); // the inputs are valid JSON, as the codec guarantees
    expect(scanJsonObjects(text)).toEqual(expected === undefined ? undefined : { kind: "duplicate", name: expected });
  });

  it("stops at the members allowed", () => {
    const text = JSON.stringify(Array.from({ length: 3 }, () => Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, i]))));
    expect(scanJsonObjects(text, 30)).toBeUndefined();
    expect(scanJsonObjects(text, 29)).toEqual({ kind: "too-many" });
  });
});

describe.each(databaseKinds)("request budget on %s", (kind) => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startServer(kind);
    token = await server.token("acme-admin", { roles: ["admin", "worker"] });
  });
  afterAll(() => server?.close());

  it.each(protocols)("refuses free-form JSON of more than the values allowed, naming the field, over %s", async (protocol) => {
    const agents = clientFor(AgentService, protocol, server.baseUrl, token);
    const err = await expectCode(agents.createAgent({ agent: { displayName: "big", model: "m", config: keys(structLimits.maxValues + 1) } }), Code.InvalidArgument);
    expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toEqual(["agent.config"]);
    expect(err.rawMessage).toMatch(/at most 1000 values/);
    // At the limit it is served.
    const ok = await agents.createAgent({ agent: { displayName: "full", model: "m", config: keys(structLimits.maxValues) } });
    expect(Object.keys(ok.agent!.config!)).toHaveLength(structLimits.maxValues);
  });

  it.each(protocols)("counts the values of every Struct of a request together, and its depth, over %s", async (protocol) => {
    const worker = clientFor(WorkerService, protocol, server.baseUrl, token);
    const half = keys(structLimits.maxValues / 2 + 1);
    const err = await expectCode(
      worker.completeTask({ taskId: uuid, leaseToken: uuid, outcome: { case: "result", value: { a: half, b: half } } }),
      Code.InvalidArgument,
    );
    expect(err.rawMessage).toMatch(/result free-form JSON must hold at most/);
    const deep = await expectCode(
      worker.completeTask({ taskId: uuid, leaseToken: uuid, outcome: { case: "result", value: nested(structLimits.maxDepth + 1) } }),
      Code.InvalidArgument,
    );
    expect(deep.rawMessage).toMatch(/result free-form JSON must nest at most 32 levels/);
    // Within both it reaches the handler (no such task).
    await expectCode(worker.completeTask({ taskId: uuid, leaseToken: uuid, outcome: { case: "result", value: nested(structLimits.maxDepth) } }), Code.NotFound);
  });

  it.each(protocols)("refuses lists far over their limits before decoding them, over %s", async (protocol) => {
    // Found by the fuzzer: 200 steps of 5,000 depends_on each (limit 200)
    // cost ~200 ms of JSON and ~900 ms of binary decoding before validation.
    const workflows = clientFor(WorkflowService, protocol, server.baseUrl, token);
    const steps = Array.from({ length: 200 }, (_, i) => ({ name: `s${i}`, kind: "noop", dependsOn: Array.from({ length: 5_000 }, () => "") }));
    const started = performance.now();
    const err = await expectCode(workflows.createWorkflow({ workflow: { displayName: "w", steps } }), Code.InvalidArgument);
    expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations).toEqual([expect.objectContaining({ field: "workflow.steps[0].depends_on", description: "must contain no more than 200 item(s)" })]);
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it("refuses it over REST too", async () => {
    const res = await fetch(`${server.baseUrl}/v1/agents`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ displayName: "big", model: "m", config: keys(20_000) }),
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/agent\.config free-form JSON must hold at most/);
  });

  it.each(["anvil.workflows.v1.WorkflowService/CreateWorkflow", "v1/workflows"])("refuses a JSON body of more object members than allowed before parsing it, at %s", async (path) => {
    // Before: 14 steps with 20,000 config keys each (3.7 MiB) took ~100 ms of JSON.parse.
    const config = Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`k${i}`, i]));
    const workflow = { displayName: "w", steps: Array.from({ length: 11 }, (_, i) => ({ name: `s${i}`, kind: "noop", config })) };
    const res = await fetch(`${server.baseUrl}/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify(path.startsWith("v1") ? workflow : { workflow }),
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain(`more than ${maxJsonMembers} object members`);
  });

  it("still refuses a Connect JSON body with a member named twice", async () => {
    const res = await fetch(`${server.baseUrl}/anvil.agents.v1.AgentService/CreateAgent`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: '{"agent":{"displayName":"a","model":"m","displayName":"b"}}',
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/duplicate object key \\"displayName\\"/);
  });

  it.each(protocols)("refuses an update mask of 5,000 paths at once, over %s", async (protocol) => {
    const agents = clientFor(AgentService, protocol, server.baseUrl, token);
    const paths = Array.from({ length: 5_000 }, (_, i) => (i % 2 ? "display_name" : `x${i}`));
    const err = await expectCode(agents.updateAgent({ agent: { id: uuid, displayName: "a" }, updateMask: { paths } }), Code.InvalidArgument);
    expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations).toEqual([expect.objectContaining({ field: "update_mask", description: `must name at most ${maxMaskPaths} paths` })]);
    // At the limit it is judged path by path.
    const within = await expectCode(agents.updateAgent({ agent: { id: uuid, displayName: "a" }, updateMask: { paths: paths.slice(0, maxMaskPaths) } }), Code.InvalidArgument);
    expect(within.rawMessage).toMatch(/cannot be updated/);
  });

  it.each(protocols)("keeps an error with 150 bad 2,000-character map keys within the trailers' limits, over %s", async (protocol) => {
    // Before: every violation named its key in full, ~400 KB of trailers; the
    // HTTP/2 peer reset the stream and a gRPC client read INTERNAL.
    const ipas = clientFor(IpaService, protocol, server.baseUrl, token);
    const agentBindings = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`${i}\0${"k".repeat(2_000)}`, "v"]));
    const err = await expectCode(ipas.createIpa({ ipa: { displayName: "x", workflowId: uuid, agentBindings } }), Code.InvalidArgument);
    const violations = err.findDetails(BadRequestSchema)[0]!.fieldViolations;
    expect(violations.length).toBeGreaterThan(0);
    expect(violations.length).toBeLessThanOrEqual(errorBudget.violations);
    expect(violations[0]!.field).toMatch(/^ipa\.agent_bindings\["0\\u0000k+…$/);
    const text = violations.reduce((n, v) => n + Buffer.byteLength(v.field) + Buffer.byteLength(v.description), 0);
    expect(text).toBeLessThanOrEqual(errorBudget.violationBytes + 2 * errorBudget.textBytes);
    expect(Buffer.byteLength(err.rawMessage)).toBeLessThanOrEqual(errorBudget.messageBytes);
  });
});
