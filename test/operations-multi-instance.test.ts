import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Operation_State, OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { Workflow_State, WorkflowService } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { createTestDatabase, type TestDatabase } from "./support/databases.js";
import { until } from "./support/operations.js";
import { mintToken, testKeys } from "./support/tokens.js";

/** A child process of the test, with everything it printed. */
interface Proc {
  readonly child: ChildProcess;
  readonly output: string[];
  text(): string;
}

function spawnNode(args: string[], env: Record<string, string>): Proc {
  // Node itself with tsx's loader, not npx: SIGKILL must hit the real process.
  const child = spawn(process.execPath, ["--import", "tsx", ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  child.stdout!.on("data", (c: Buffer) => output.push(c.toString()));
  child.stderr!.on("data", (c: Buffer) => output.push(c.toString()));
  return { child, output, text: () => output.join("") };
}

function client<S extends typeof OperationService | typeof WorkflowService>(service: S, url: string, token: string) {
  const transport = createConnectTransport({
    baseUrl: url,
    httpVersion: "1.1",
    interceptors: [(next) => (req) => { req.header.set("authorization", `Bearer ${token}`); return next(req); }],
  });
  return createClient(service, transport);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!process.env.TEST_DATABASE_URL)("operations across three gateway processes on PostgreSQL", () => {
  const dir = mkdtempSync(join(tmpdir(), "anvil-multi-"));
  const keys = testKeys();
  const keysFile = join(dir, "service-accounts.json");
  const gateways: Proc[] = [];
  const workers: Proc[] = [];
  const urls: string[] = [];
  let database: TestDatabase;

  beforeAll(async () => {
    writeFileSync(keysFile, JSON.stringify({ keys }));
    database = await createTestDatabase("postgres");
    const env = {
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: database.url!,
      ANVIL_KEYS_FILE: keysFile,
      LOG_LEVEL: "warn",
      ANVIL_DB_POOL_SIZE: "5",
      ANVIL_OPERATIONS_POLL_MS: "500",
      ANVIL_TASK_MAX_ATTEMPTS: "6",
      ANVIL_TASK_RETRY_BASE_MS: "100",
      // 40 watches of one caller on three gateways, then two: the third's
      // watchers resume on the others, past the default 16 streams per caller
      // when a loaded machine slows the runs down. The limit is not under test.
      ANVIL_MAX_STREAMS_PER_PRINCIPAL: "64",
    };
    // The first migrates; the others find the schema in place.
    for (let i = 0; i < 3; i++) {
      const gateway = spawnNode(["src/main.ts"], env);
      gateways.push(gateway);
      await until(() => /listening on (http:\/\/\S+)/.test(gateway.text()) || gateway.child.exitCode !== null, 60_000, `gateway ${i}`);
      const url = /listening on (http:\/\/\S+)/.exec(gateway.text())?.[1];
      if (!url) throw new Error(`gateway ${i} did not start:\n${gateway.text()}`);
      urls.push(url.replace("localhost", "127.0.0.1"));
    }
  }, 120_000);

  afterAll(async () => {
    for (const p of [...workers, ...gateways]) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        const exited = new Promise((r) => p.child.once("exit", r));
        p.child.kill("SIGKILL");
        await exited;
      }
    }
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("finishes every task exactly once, and compensates every completed saga step exactly once, while a gateway and a worker holding a compensation's lease are SIGKILLed", async () => {
    const editor = await mintToken(keys.find((k) => k.key_id === "acme-editor")!);
    const worker = await mintToken(keys.find((k) => k.key_id === "acme-worker")!);
    const wf = client(WorkflowService, urls[0]!, editor);
    type Step = { name: string; kind: string; dependsOn?: string[]; config: Record<string, number | boolean>; compensation?: { kind: string; config: Record<string, number> } };
    const make = async (steps: Step[]) =>
      (await wf.createWorkflow({ workflow: { displayName: "load", state: Workflow_State.ACTIVE, steps: steps.map((s) => ({ dependsOn: [], ...s })) } })).workflow!.id;
    // A three-step saga whose last step fails: its first two are undone, slowly enough to be killed mid-way.
    const undo = { kind: "demo", config: { seconds: 0.6, steps: 2 } };
    const saga = await make([
      { name: "a", kind: "demo", config: { seconds: 0.1, steps: 1 }, compensation: undo },
      { name: "b", kind: "demo", dependsOn: ["a"], config: { seconds: 0.1, steps: 1 }, compensation: undo },
      { name: "c", kind: "demo-fail", dependsOn: ["b"], config: { seconds: 0.05, retryable: false } },
    ]);
    const sagaPlan = { count: 20, expect: Operation_State.FAILED, id: saga };
    const plans = [
      { count: 80, expect: Operation_State.SUCCEEDED, id: await make([{ name: "a", kind: "demo", config: { seconds: 0.2, steps: 2 } }]) },
      {
        count: 60,
        expect: Operation_State.SUCCEEDED,
        id: await make([
          { name: "a", kind: "demo", config: { seconds: 0.1, steps: 1 } },
          { name: "b", kind: "demo", dependsOn: ["a"], config: { seconds: 0.1, steps: 1 } },
        ]),
      },
      { count: 30, expect: Operation_State.SUCCEEDED, id: await make([{ name: "a", kind: "demo-fail", config: { seconds: 0.05, succeed_on_attempt: 2 } }]) },
      { count: 30, expect: Operation_State.FAILED, id: await make([{ name: "a", kind: "demo-fail", config: { seconds: 0.05, retryable: false } }]) },
    ];

    // Watchers on every gateway; a watcher whose gateway dies resumes on another with after_sequence.
    let resumed = 0;
    const dead = new Set<number>();
    const watch = async (id: string, start: number): Promise<number[]> => {
      const seen: number[] = [];
      let at = start;
      for (let tries = 0; tries < 30; tries++) {
        if (dead.has(at)) at = (at + 1) % 3;
        try {
          for await (const m of client(OperationService, urls[at]!, editor).watchOperation({ id, afterSequence: BigInt(seen.at(-1) ?? 0) })) {
            if (m.item.case === "event") seen.push(Number(m.item.value.sequence));
          }
          return seen;
        } catch {
          resumed++;
          at = (at + 1) % 3;
          await sleep(200);
        }
      }
      throw new Error(`watch of ${id} kept failing`);
    };
    const watched: string[] = [];
    const watches: Array<Promise<number[]>> = [];

    // Start runs, spread over the three gateways, every fifth watched (every saga).
    const expected = new Map<string, Operation_State>();
    const sagaIds: string[] = [];
    const start = async (list: ReadonlyArray<{ count: number; expect: Operation_State; id: string }>) => {
      const runs = list.flatMap((p) => Array.from({ length: p.count }, () => p));
      for (let i = 0; i < runs.length; i += 20) {
        await Promise.all(
          runs.slice(i, i + 20).map(async (plan, j) => {
            const op = (await client(WorkflowService, urls[(i + j) % 3]!, editor).runWorkflow({ id: plan.id })).operation!;
            expected.set(op.id, plan.expect);
            if (plan.id === saga) sagaIds.push(op.id);
            if (plan.id === saga || (i + j) % 5 === 0) {
              watched.push(op.id);
              watches.push(watch(op.id, (i + j) % 3));
            }
          }),
        );
      }
    };
    // The sagas first, alone: the queue is first in, first out, and their compensations should not wait behind the load.
    await start([sagaPlan]);

    // Four reference workers: two on gateway 0, one each on 1 and 2.
    const startWorker = (name: string, url: string) =>
      spawnNode(["src/cli/worker.ts", "--url", url, "--token", worker, "--kinds", "demo,demo-fail", "--id", name, "--lease", "3", "--concurrency", "2"], {});
    workers.push(startWorker("w0", urls[0]!), startWorker("w1", urls[0]!), startWorker("w2", urls[1]!), startWorker("w3", urls[2]!));

    // Kill w0 the moment it holds the lease of a compensation it has not completed.
    const victim = workers[0]!;
    const claimedBy = (p: Proc, only = "") => [...p.text().matchAll(new RegExp(`claimed \\S+ (\\S+) \\(step [^,\\s]+${only}`, "g"))].map((m) => m[1]!);
    const completedBy = (p: Proc) => new Set([...p.text().matchAll(/completed (\S+):/g)].map((m) => m[1]!));
    await until(() => claimedBy(victim, ", compensation").some((t) => !completedBy(victim).has(t)), 60_000, "w0 to hold a compensation's lease");
    victim.child.kill("SIGKILL");
    const orphaned = claimedBy(victim).filter((t) => !completedBy(victim).has(t));
    // Then 180 more runs: the orphaned compensation, retried once its lease
    // expires, queues behind them, so its saga is still compensating when
    // the gateway dies.
    await start(plans);
    const ids = [...expected.keys()];
    // Then the third gateway, with its streams and its worker's connections.
    await sleep(500);
    const compensating = await client(OperationService, urls[0]!, editor).listOperations({ state: Operation_State.COMPENSATING });
    expect(compensating.operations.length).toBeGreaterThan(0);
    dead.add(2);
    gateways[2]!.child.kill("SIGKILL");

    const ops = client(OperationService, urls[0]!, editor);
    const finalStates = new Map<string, Operation_State>();
    await until(
      async () => {
        const left = ids.filter((id) => !finalStates.has(id));
        for (const id of left.slice(0, 50)) {
          const op = (await ops.getOperation({ id })).operation!;
          if (op.state === Operation_State.SUCCEEDED || op.state === Operation_State.FAILED || op.state === Operation_State.CANCELLED) finalStates.set(id, op.state);
        }
        return finalStates.size === ids.length;
      },
      150_000,
      "every operation to finish",
    );
    for (const [id, state] of expected) expect(Operation_State[finalStates.get(id)!], id).toBe(Operation_State[state]);

    // The tables: each operation has one completion, gapless events; every task is done once.
    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    try {
      const events = await db.query<{ id: string; n: number; max: number; last: number; completions: number }>(`
        select o.id, count(e.sequence)::int n, max(e.sequence)::int max, o.last_sequence last,
               count(*) filter (where e.type = 'completion')::int completions
        from operations o join operation_events e on e.tenant_id = o.tenant_id and e.operation_id = o.id
        group by o.id, o.last_sequence`);
      expect(events.rows).toHaveLength(ids.length);
      for (const r of events.rows) expect([r.n, r.max, r.completions], r.id).toEqual([r.last, r.last, 1]);
      const tasks = await db.query<{ state: string; n: number }>(`select state, count(*)::int n from tasks group by state`);
      expect(tasks.rows).toEqual([{ state: "done", n: 260 + 20 * 5 }]);
      // Each saga run: a and b succeeded and were compensated once each, c failed and was not.
      const undone = await db.query<{ operation_id: string; steps: string }>(
        `select s.operation_id, string_agg(s.step || ':' || s.outcome || ':' || coalesce(c.outcome, '-'), ',' order by s.step) steps
         from tasks s left join tasks c on c.compensates = s.id
         where s.compensates is null and s.operation_id = any($1::uuid[]) and s.step <> ''
         group by s.operation_id`,
        [sagaIds],
      );
      expect(undone.rows).toHaveLength(20);
      for (const r of undone.rows) expect(r.steps, r.operation_id).toBe("a:succeeded:succeeded,b:succeeded:succeeded,c:failed:-");
      // The killed worker's tasks were finished by others, the compensation it held among them. (A task
      // whose completion w0 sent, and the gateway committed, just before the kill, before w0 logged it,
      // stays w0's at its first attempt: its worker_id is w0's own.)
      expect(orphaned.length).toBeGreaterThan(0);
      const rescued = await db.query<{ id: string; worker_id: string; attempt: number; compensates: string | null }>(
        `select id, worker_id, attempt, compensates from tasks where id = any($1::uuid[]) and worker_id <> 'w0'`,
        [orphaned],
      );
      for (const t of rescued.rows) expect(t.attempt, t.id).toBeGreaterThanOrEqual(2);
      expect(rescued.rows.filter((t) => t.compensates !== null).length).toBeGreaterThan(0);
    } finally {
      await db.end();
    }

    // Every watcher saw every event exactly once, in order — those on the killed gateway by resuming elsewhere.
    const seen = await Promise.all(watches);
    for (const [i, sequences] of seen.entries()) {
      const last = Number((await ops.getOperation({ id: watched[i]! })).operation!.lastSequence);
      expect(sequences, watched[i]).toEqual(Array.from({ length: last }, (_, k) => k + 1));
    }
    expect(resumed).toBeGreaterThan(0);
  }, 240_000);
});
