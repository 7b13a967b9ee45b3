import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompensationRecord_Outcome, Operation_State } from "../gen/anvil/operations/v1/operations_pb.js";
import { ensureProtoDeps, runBuf } from "./support/buf-cli.js";
import { databaseKinds } from "./support/databases.js";
import { type OperationClients, operationClients, runWorkflow, until, watchWith } from "./support/operations.js";
import { type ReferenceWorker, startReferenceWorker } from "./support/reference-worker.js";
import { startServer, type TestServer } from "./support/server.js";

describe.each(databaseKinds)("the reference worker on %s", (kind) => {
  let server: TestServer;
  let c: OperationClients;
  let worker: ReferenceWorker;
  const tmp = mkdtempSync(join(tmpdir(), "anvil-artifacts-"));

  beforeAll(async () => {
    server = await startServer(kind);
    c = await operationClients(server);
    worker = await startReferenceWorker(server.baseUrl, await server.token("acme-worker"));
  });
  afterAll(async () => {
    await worker?.stop();
    await server?.close();
  });

  it("runs a demo workflow to the end, reporting progress live", async () => {
    const op = await runWorkflow(c, [
      { name: "first", kind: "demo", config: { seconds: 0.4, steps: 2 } },
      { name: "second", kind: "demo", dependsOn: ["first"], config: { seconds: 0.4, steps: 2 } },
    ]);
    const watch = watchWith(c.operations, op.id);
    expect(await watch.done).toBeUndefined();
    const progress = watch.messages.flatMap((m) => (m.item.case === "event" && m.item.value.payload.case === "progress" ? [m.item.value.payload.value.progress] : []));
    expect(progress.length).toBeGreaterThanOrEqual(4);
    expect(progress.at(-1)).toBe(1);
    const final = (await c.operations.getOperation({ id: op.id })).operation!;
    expect(final.state).toBe(Operation_State.SUCCEEDED);
    expect(Object.keys(final.result!.steps as object)).toEqual(["first", "second"]);
    // Each demo step attached its report; the README's curl downloads one.
    expect((await c.operations.listArtifacts({ operationId: op.id })).artifacts.map((a) => a.name)).toEqual(["first-report.md", "second-report.md"]);
    const token = await server.token("acme-viewer");
    const { stdout } = await promisify(execFile)("curl", ["-sfOJ", `${server.baseUrl}/v1/operations/${op.id}/artifacts/second-report.md`, "-H", `Authorization: Bearer ${token}`, "--output-dir", tmp], { timeout: 30_000 });
    expect(stdout).toBe("");
    expect(readFileSync(join(tmp, "second-report.md"), "utf8")).toMatch(/^# second report\n\n- parts: 2\n/);
  });

  it("runs the README's three-step saga: the last step fails, the first two are undone in reverse", async () => {
    const undo = { kind: "demo", config: { seconds: 0.2, steps: 1 } };
    const op = await runWorkflow(c, [
      { name: "flight", kind: "demo", config: { seconds: 0.2, steps: 1 }, compensation: undo },
      { name: "hotel", kind: "demo", dependsOn: ["flight"], config: { seconds: 0.2, steps: 1 }, compensation: { ...undo, maxAttempts: 5 } },
      { name: "payment", kind: "demo-fail", dependsOn: ["hotel"], config: { seconds: 0.1, retryable: false, message: "card declined" } },
    ]);
    expect(await watchWith(c.operations, op.id).done).toBeUndefined();
    const final = (await c.operations.getOperation({ id: op.id })).operation!;
    expect(final.state).toBe(Operation_State.FAILED);
    expect(final.error?.message).toBe("step payment: card declined");
    expect(final.compensations.map((r) => [r.step, r.outcome])).toEqual([
      ["hotel", CompensationRecord_Outcome.SUCCEEDED],
      ["flight", CompensationRecord_Outcome.SUCCEEDED],
    ]);
  });

  it("fails on request without retrying, and stops a cancelled task", async () => {
    const failing = await runWorkflow(c, [{ name: "boom", kind: "demo-fail", config: { seconds: 0.1, retryable: false } }]);
    expect(await watchWith(c.operations, failing.id).done).toBeUndefined();
    const failed = (await c.operations.getOperation({ id: failing.id })).operation!;
    expect(failed).toMatchObject({ state: Operation_State.FAILED, attempt: 1 });

    const long = await runWorkflow(c, [{ name: "slow", kind: "demo", config: { seconds: 30, steps: 60 } }]);
    await until(async () => (await c.operations.getOperation({ id: long.id })).operation!.progress > 0, 15_000, "the slow task to make progress");
    await c.operations.cancelOperation({ id: long.id });
    expect(await watchWith(c.operations, long.id).done).toBeUndefined();
    expect((await c.operations.getOperation({ id: long.id })).operation!.state).toBe(Operation_State.CANCELLED);
  });

  it("is watchable the README way: curl (Connect streaming over HTTP/1.1) and buf curl", async () => {
    const op = await runWorkflow(c, [{ name: "only", kind: "demo", config: { seconds: 0.6, steps: 3 } }]);
    const token = await server.token("acme-viewer");
    // A Connect streaming request is one enveloped message: flags 0, 4-byte big-endian length, JSON.
    const json = JSON.stringify({ id: op.id });
    const script = `printf '\\x00\\x00\\x00\\x00\\x${json.length.toString(16).padStart(2, "0")}%s' '${json}' | curl -sN ${server.baseUrl}/anvil.operations.v1.OperationService/WatchOperation -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/connect+json' --data-binary @-`;
    const { stdout } = await promisify(execFile)("bash", ["-c", script], { timeout: 30_000 });
    expect(stdout).toContain(`"operation":{"id":"${op.id}"`);
    expect(stdout).toContain('"completion":{"state":"STATE_SUCCEEDED"');
    // buf curl, over gRPC with the schema from the protos, after the fact: the whole history again.
    await ensureProtoDeps();
    const buf = await runBuf(["curl", "--schema", "proto", "--protocol", "grpc", "--http2-prior-knowledge", "-H", `Authorization: Bearer ${token}`,
      "-d", json, `${server.baseUrl}/anvil.operations.v1.OperationService/WatchOperation`]);
    expect(buf.code, buf.stderr).toBe(0);
    expect(buf.stdout).toContain('"progress": 1');
    expect(buf.stdout).toContain('"state": "STATE_SUCCEEDED"');
  });
});
