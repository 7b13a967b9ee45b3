import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code as RpcCode } from "../gen/google/rpc/code_pb.js";
import { databaseKinds } from "./support/databases.js";
import { claim, type OperationClients, operationClients, runWorkflow } from "./support/operations.js";
import { startServer, type TestServer } from "./support/server.js";

// Retries wait: a retryable failure is not handed out again before its
// backoff, and each retry waits twice as long as the one before, up to the
// cap. (The suite's other operation tests use a 50 ms base, too short to tell
// a backoff from none.)
const baseMs = 1_500;
const maxMs = 2_500;

describe.each(databaseKinds)("retry backoff on %s", (kind) => {
  let server: TestServer;
  let c: OperationClients;
  beforeAll(async () => {
    server = await startServer(kind, {
      env: { ANVIL_TASK_RETRY_BASE_MS: String(baseMs), ANVIL_TASK_RETRY_MAX_MS: String(maxMs), ANVIL_TASK_MAX_ATTEMPTS: "4", ANVIL_OPERATIONS_POLL_MS: "100" },
    });
    c = await operationClients(server);
  });
  afterAll(() => server?.close());

  it("holds a failed task back for its backoff, doubling it per attempt up to the cap", async () => {
    const op = await runWorkflow(c, [{ name: "flaky", kind: "backoff" }]);
    const fail = (task: { id: string; leaseToken: string }) =>
      c.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "error", value: { code: RpcCode.UNAVAILABLE, message: "flaky", retryable: true } } });
    let task = (await claim(c, "w1", { kinds: ["backoff"] }))!;
    for (const expected of [baseMs, Math.min(maxMs, baseMs * 2)]) {
      const failedAt = Date.now();
      await fail(task);
      // Not handed out again at once: a claim that does not wait finds nothing.
      expect(await claim(c, "eager", { kinds: ["backoff"], waitMs: 0 }), `attempt ${task.attempt + 1} before its backoff`).toBeUndefined();
      const next = (await claim(c, "patient", { kinds: ["backoff"], waitMs: 15_000 }))!;
      expect(next.attempt).toBe(task.attempt + 1);
      // Measured from before the failure was reported, so never more than the real wait.
      expect(Date.now() - failedAt, `attempt ${next.attempt} waited its backoff`).toBeGreaterThanOrEqual(expected - 50);
      task = next;
    }
    await c.workers.completeTask({ taskId: task.id, leaseToken: task.leaseToken, outcome: { case: "result", value: {} } });
    // The events say when each retry is due: the base, then twice the base, capped.
    const events = (await c.operations.listOperationEvents({ id: op.id, pageSize: 100 })).events;
    const due = events.flatMap((e) => (e.payload.case === "error" && e.payload.value.willRetry ? [timestampMs(e.payload.value.retryTime!) - timestampMs(e.time!)] : []));
    expect(due).toHaveLength(2);
    expect(due[0]).toBeGreaterThanOrEqual(baseMs - 50);
    expect(due[0]).toBeLessThan(baseMs + 1_000);
    expect(due[1]).toBeGreaterThanOrEqual(maxMs - 50);
    expect(due[1]).toBeLessThan(maxMs + 1_000);
  });
});
