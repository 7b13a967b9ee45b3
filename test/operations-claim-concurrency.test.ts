import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateToLatest } from "../src/db/migrator.js";
import type { Database } from "../src/db/schema.js";
import { UnitOfWork } from "../src/db/unit-of-work.js";
import { OperationStarter } from "../src/operations/start-operation.js";
import { TaskLifecycle } from "../src/operations/task-lifecycle.js";
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.js";

/**
 * Claims of one operation's tasks share its row (FOR KEY SHARE) and meet
 * only to append their events: the 100 children of a fan-out go to 8
 * workers' claims side by side, not one claim at a time. PostgreSQL only:
 * the embedded database has one connection, so nothing runs side by side.
 */
describe.skipIf(!databaseKinds.includes("postgres"))("claims of one operation side by side", () => {
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
      new OperationStarter(settings).start(tx, {
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
});
