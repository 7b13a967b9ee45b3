import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateToLatest } from "../src/db/migrator.js";
import type { Database } from "../src/db/schema.js";
import { UnitOfWork } from "../src/db/unit-of-work.js";
import type { Completion } from "../src/operations/batch-completion.js";
import { OperationStarter } from "../src/operations/start-operation.js";
import { TaskLifecycle } from "../src/operations/task-lifecycle.js";
import type { ClaimedTask } from "../src/operations/task.js";
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.js";

/**
 * Claims of one operation's tasks share its row (FOR KEY SHARE) and meet
 * only to append their events: the 100 children of a fan-out go to 8
 * workers' claims side by side, not one claim at a time. Batches of
 * completions over the same operations lock them all in id order before
 * any task, so batches naming them in opposite orders wait for each other
 * instead of deadlocking (PostgreSQL would answer one of them ABORTED after
 * its deadlock_timeout). PostgreSQL only: the embedded database has one
 * connection, so nothing runs side by side.
 */
describe.skipIf(!databaseKinds.includes("postgres"))("claims and completions of the same operations side by side", () => {
  const settings = { maxAttempts: 3, retryBaseMs: 100, retryMaxMs: 1_000 };
  const scope = { tenant: "acme" };
  let database: TestDatabase;
  let db: Kysely<Database>;
  let uow: UnitOfWork;
  const lifecycle = new TaskLifecycle(settings);

  beforeAll(async () => {
    database = await createTestDatabase("postgres");
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url, max: 12 }) }) });
    await migrateToLatest(db);
    uow = new UnitOfWork(db);
  });

  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  /** A started operation of `n` parallel tasks of `kind`. */
  const start = (kind: string, n: number) =>
    uow.transact(scope, (tx) =>
      new OperationStarter(settings).start(scope, tx, {
        kind: "workflows.run",
        resource: "workflows/x",
        tasks: Array.from({ length: n }, (_, i) => ({ step: `s${i}`, kind, input: {}, dependsOn: [] })),
      }),
    );

  /** The operation and its events, read back. */
  const history = async (id: string) => {
    const operation = await uow.read(scope, (tx) => tx.operations.get(id));
    const events = await uow.read(scope, (tx) => tx.operations.events(id, 0, 1_000));
    return { operation, events };
  };

  it("lets a claim take an operation's other tasks while another claim of it has not committed", async () => {
    const op = await start("side", 6);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let firstClaimed!: () => void;
    const claimedFirst = new Promise<void>((resolve) => (firstClaimed = resolve));
    const first = uow.transact(scope, async (tx) => {
      const tasks = await lifecycle.claim(tx, ["side"], "w1", 30_000, 3);
      firstClaimed();
      await gate; // holds its leases and its append until released
      return tasks;
    });
    await claimedFirst;
    const second = uow.transact(scope, (tx) => lifecycle.claim(tx, ["side"], "w2", 30_000, 3));
    // The second claim picks while the first is open, then waits only to append after it.
    await new Promise((r) => setTimeout(r, 200));
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(a).toHaveLength(3);
    expect(b).toHaveLength(3);
    expect(new Set([...a, ...b].map((c) => c.task.id)).size).toBe(6);

    const { operation, events } = await history(op.id);
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
    expect(operation.lastSequence).toBe(events.length);
    // Started once (by the first claim), six claims logged, six attempts counted.
    expect(events.filter((e) => e.payload.type === "stage" && e.payload.stage === "running")).toHaveLength(1);
    expect(events.filter((e) => e.payload.type === "log")).toHaveLength(6);
    expect(operation).toMatchObject({ state: "running", stage: "running", attempt: 6 });
  });

  it("hands a 100-way fan-out to 8 claiming workers once each, completed alongside, events gapless", async () => {
    const op = await start("fan", 100);
    const got: string[] = [];
    const worker = async (n: number) => {
      for (;;) {
        const claimed = await uow.transact(scope, (tx) => lifecycle.claim(tx, ["fan"], `w${n}`, 30_000, 7));
        if (claimed.length === 0) {
          // Every task claimed, or the others hold the operation for a moment: ask again until the operation is done.
          const { operation } = await history(op.id);
          if (operation.state === "succeeded") return;
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        for (const { task } of claimed) {
          got.push(task.id);
          await uow.transact(scope, (tx) => lifecycle.complete(tx, task.id, task.leaseToken!, { result: { n } }));
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, n) => worker(n)));
    expect(got).toHaveLength(100);
    expect(new Set(got).size).toBe(100);
    const { operation, events } = await history(op.id);
    expect(operation).toMatchObject({ state: "succeeded", attempt: 100 });
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)!.payload.type).toBe("completion");
    expect(events.filter((e) => e.payload.type === "log")).toHaveLength(100);
  });

  /** Started operations of two parallel tasks of `kind` each, every task leased. */
  const leased = async (kind: string, operations: number): Promise<ClaimedTask[]> => {
    for (let i = 0; i < operations; i++) {
      await uow.transact(scope, (tx) =>
        new OperationStarter(settings).start(scope, tx, {
          kind: "workflows.run",
          resource: "workflows/x",
          tasks: ["one", "two"].map((step) => ({ step, kind, input: {}, dependsOn: [] })),
        }),
      );
    }
    return uow.transact(scope, (tx) => lifecycle.claim(tx, [kind], "w", 30_000, operations * 2));
  };

  const success = ({ task }: ClaimedTask): Completion => ({ taskId: task.id, leaseToken: task.leaseToken!, outcome: { result: { step: task.step } } });

  it("completes batches naming the same operations in opposite orders side by side without deadlock: every task once, events gapless", async () => {
    for (let round = 0; round < 8; round++) {
      const kind = `cross-${round}`;
      const tasks = await leased(kind, 6);
      expect(tasks).toHaveLength(12);
      const ones = tasks.filter((c) => c.task.step === "one");
      const twos = tasks.filter((c) => c.task.step === "two").reverse();
      // One batch also takes the slower one-by-one path for an operation: a retryable failure.
      const [retried, ...rest] = ones;
      const first = [...rest.map(success), { taskId: retried!.task.id, leaseToken: retried!.task.leaseToken!, outcome: { error: { code: 14, message: "flaky", retryable: true } } }];
      const [a, b] = await Promise.all([
        uow.transact(scope, (tx) => lifecycle.completeAll(tx, first)),
        uow.transact(scope, (tx) => lifecycle.completeAll(tx, twos.map(success))),
      ]);
      expect([...a, ...b].every((answer) => "operation" in answer)).toBe(true);

      for (const operationId of new Set(tasks.map((c) => c.task.operationId))) {
        const operation = await uow.read(scope, (tx) => tx.operations.get(operationId));
        const events = await uow.read(scope, (tx) => tx.operations.events(operationId, 0, 1_000));
        expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
        expect(operation.lastSequence).toBe(events.length);
        const completions = events.filter((e) => e.payload.type === "completion");
        if (operationId === retried!.task.operationId) {
          expect(operation.state).toBe("running");
          expect(completions).toHaveLength(0);
        } else {
          expect(operation).toMatchObject({ state: "succeeded", result: { steps: { one: { step: "one" }, two: { step: "two" } } } });
          expect(completions).toHaveLength(1);
          // Two successes, each with its progress event: the first at one half, whichever batch came first.
          expect(events.filter((e) => e.payload.type === "progress").map((e) => (e.payload as { progress: number }).progress)).toEqual([0.5, 1]);
        }
      }
    }
  });
});
