import { type ChildProcess, spawn } from "node:child_process";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Operation_State, WorkerService } from "../gen/anvil/operations/v1/operations_pb.js";
import { runWorker } from "../src/worker/task-runner.js";
import { transportFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { type OperationClients, operationClients, runWorkflow, until } from "./support/operations.js";
import { startServer, type TestServer } from "./support/server.js";

/** The gateway accepts a token up to this long past its `exp` (TokenVerifier's default clock tolerance). */
const clockToleranceSec = 30;

interface WorkerChild {
  readonly child: ChildProcess;
  readonly output: string[];
  readonly exited: Promise<number | null>;
  text(): string;
}

/** The reference worker as its own process, minting its own tokens from the server's keys file. */
function startWorker(server: TestServer, extra: string[]): WorkerChild {
  // Node itself with tsx's loader (not npx): SIGTERM reaches the worker, not a wrapper.
  const args = ["--import", "tsx", "src/cli/worker.ts", "--url", server.baseUrl, "--keys-file", server.keysFile, "--key", "acme-worker", "--kinds", "demo", "--lease", "5", ...extra];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  child.stdout!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output, exited, text: () => output.join("") };
}

async function stopWorker(w: WorkerChild | undefined): Promise<void> {
  if (!w || w.child.exitCode !== null || w.child.signalCode !== null) return;
  w.child.kill("SIGKILL");
  await w.exited;
}

describe.each(databaseKinds)("reference worker robustness on %s", (kind) => {
  let server: TestServer;
  let c: OperationClients;
  const state = async (id: string) => (await c.operations.getOperation({ id })).operation!.state;

  beforeAll(async () => {
    server = await startServer(kind);
    c = await operationClients(server);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("renews its own token, so it keeps claiming and completing past the first token's expiry", { timeout: 90_000 }, async () => {
    const w = startWorker(server, ["--token-lifetime", "1"]);
    let opId: string | undefined;
    try {
      await until(() => w.text().includes("claiming"), 30_000, "the worker to start");
      // Past the first token's lifetime and the gateway's tolerance of late tokens.
      await new Promise((r) => setTimeout(r, (1 + clockToleranceSec + 2) * 1000));
      const op = await runWorkflow(c, [{ name: "late", kind: "demo", config: { seconds: 0.2, steps: 1 } }]);
      opId = op.id;
      await until(async () => (await state(op.id)) === Operation_State.SUCCEEDED, 20_000, `the late operation to succeed; worker said:\n${w.text()}`);
      expect(w.text()).not.toContain("claim failed");
    } finally {
      await stopWorker(w);
      // Left queued by a failure, it would be claimed by the next test's worker.
      if (opId) await c.operations.cancelOperation({ id: opId }).catch(() => undefined);
    }
  });

  it("reports a failing heartbeat, with its code, instead of swallowing it", async () => {
    // A gateway of its own, stopped while the worker holds a task: every heartbeat then fails.
    const doomed = await startServer(kind);
    const dc = await operationClients(doomed);
    const lines: string[] = [];
    const stop = new AbortController();
    let gatewayStopped = false;
    try {
      await runWorkflow(dc, [{ name: "held", kind: "demo" }]);
      const worker = runWorker({
        client: createClient(WorkerService, transportFor("connect-json", doomed.baseUrl, await doomed.token("acme-worker"))),
        handlers: {
          // Holds the task until the test has seen what it waits for.
          demo: async () => {
            await until(() => stop.signal.aborted, 30_000, "the test to finish");
            return {};
          },
        },
        workerId: "heartbeat-test",
        leaseMs: 1_500, // a heartbeat every 500 ms
        concurrency: 1,
        signal: stop.signal,
        log: (line) => lines.push(line),
      });
      await until(() => lines.some((l) => l.startsWith("claimed")), 15_000, `the task to be claimed; worker said:\n${lines.join("\n")}`);
      await doomed.close();
      gatewayStopped = true;
      await until(() => lines.some((l) => l.startsWith("heartbeat of")), 10_000, `a heartbeat failure to be reported; worker said:\n${lines.join("\n")}`);
      expect(lines.find((l) => l.startsWith("heartbeat of"))).toMatch(/^heartbeat of \S+ failed \(code Unavailable\): /);
      stop.abort();
      await worker;
    } finally {
      stop.abort();
      if (!gatewayStopped) await doomed.close();
    }
  });

  it("on SIGTERM stops claiming, finishes the task in hand and exits 0", { timeout: 60_000 }, async () => {
    const w = startWorker(server, ["--grace", "20"]);
    try {
      await until(() => w.text().includes("claiming"), 30_000, "the worker to start");
      const inHand = await runWorkflow(c, [{ name: "in-hand", kind: "demo", config: { seconds: 2, steps: 2 } }]);
      await until(() => w.text().includes(`claimed demo`), 15_000, "the task to be claimed");
      w.child.kill("SIGTERM");
      const after = await runWorkflow(c, [{ name: "after", kind: "demo", config: { seconds: 0.1, steps: 1 } }]);
      expect(await w.exited).toBe(0);
      expect(await state(inHand.id)).toBe(Operation_State.SUCCEEDED);
      // Nobody claimed the one started after the signal.
      expect(await state(after.id)).toBe(Operation_State.QUEUED);
      expect(w.text()).toContain("stopped");
      await c.operations.cancelOperation({ id: after.id });
    } finally {
      await stopWorker(w);
    }
  });

  it("past the grace period leaves the task to its lease, never completing it half-way, and exits 0", { timeout: 60_000 }, async () => {
    const w = startWorker(server, ["--grace", "1"]);
    try {
      await until(() => w.text().includes("claiming"), 30_000, "the worker to start");
      const slow = await runWorkflow(c, [{ name: "slow", kind: "demo", config: { seconds: 60, steps: 60 } }]);
      await until(() => w.text().includes(`claimed demo`), 15_000, "the task to be claimed");
      const signalled = Date.now();
      w.child.kill("SIGTERM");
      expect(await w.exited).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(10_000);
      expect(w.text()).toContain("left unfinished");
      expect(w.text()).not.toContain("completed");
      expect(await state(slow.id)).toBe(Operation_State.RUNNING);
      await c.operations.cancelOperation({ id: slow.id });
    } finally {
      await stopWorker(w);
    }
  });
});
