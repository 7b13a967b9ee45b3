// What a transaction announces (a queued task, an appended event) is sent
// after its commit, never inside it (src/db/after-commit-announcer.ts): a
// NOTIFY in a transaction makes its commit queue on PostgreSQL's
// cluster-wide notify lock. This process's listeners hear it at once,
// another instance's through the database, each once.
import { randomUUID } from "node:crypto";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DatabaseHandle, openDatabase } from "../src/db/database.js";
import { migrateToLatest } from "../src/db/migrator.js";
import { UnitOfWork } from "../src/db/unit-of-work.js";
import { tasksChannel } from "../src/operations/task.repository.js";
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.js";

describe.each(databaseKinds)("announcements after commit on %s", (kind) => {
  let database: TestDatabase;
  let instance: DatabaseHandle;
  /** A second gateway instance on the same database (PostgreSQL only: PGlite has one process). */
  let other: DatabaseHandle | undefined;
  let uow: UnitOfWork;
  /** Every statement `instance` ran, by name, in order. */
  const statements: string[] = [];
  const log = pino({ level: "silent" });

  beforeAll(async () => {
    database = await createTestDatabase(kind);
    const target = (poolSize: number) =>
      database.url ? ({ kind: "postgres", url: database.url, poolSize, statementTimeoutMs: 10_000 } as const) : ({ kind: "pglite", dataDir: "memory://" } as const);
    instance = await openDatabase(target(4), log, (name) => statements.push(name));
    await migrateToLatest(instance.db);
    if (database.url) other = await openDatabase(target(2), log);
    uow = new UnitOfWork(instance.db, undefined, instance);
  });
  afterAll(async () => {
    await other?.close();
    await instance?.close();
    await database?.drop();
  });

  /** Payloads heard on the tasks channel by `handle`, until the returned stop is called. */
  async function hear(handle: DatabaseHandle): Promise<{ heard: string[]; stop: () => Promise<void> }> {
    const heard: string[] = [];
    const stop = await handle.listen(tasksChannel, (payload) => heard.push(payload));
    return { heard, stop };
  }

  async function until(check: () => boolean, what: string): Promise<void> {
    for (let waited = 0; !check(); waited += 10) {
      if (waited > 10_000) throw new Error(`never ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Starts an operation of `tenant` with `count` queued tasks of `taskKind` (each registering the same announcement), then runs `after`. */
  function start(tenant: string, taskKind: string, count: number, after: () => void = () => undefined): Promise<void> {
    return uow.transact({ tenant }, async (tx) => {
      const operation = await tx.operations.create("test.announce", "resources/x");
      await tx.tasks.insert(
        operation.id,
        Array.from({ length: count }, (_, i) => ({ id: randomUUID(), step: `s${i}`, kind: taskKind, input: {}, dependsOn: [] })),
        3,
      );
      after();
    });
  }

  it("announces a committed transaction after its commit, once, waking this process at once and another instance through the database", async () => {
    const tenant = `t-${randomUUID()}`;
    const taskKind = `k-${randomUUID()}`;
    const local = await hear(instance);
    const remote = other === undefined ? undefined : await hear(other);
    try {
      statements.length = 0;
      // The same announcement registered 5 times by the insert, and 3 more by a second insert of the transaction.
      await uow.transact({ tenant }, async (tx) => {
        const operation = await tx.operations.create("test.announce", "resources/x");
        const row = (step: string) => ({ id: randomUUID(), step, kind: taskKind, input: {}, dependsOn: [] });
        await tx.tasks.insert(operation.id, ["a", "b", "c", "d", "e"].map(row), 3);
        await tx.tasks.insert(operation.id, ["f", "g", "h"].map(row), 3);
      });
      // Heard in this process before transact even returned: no round trip through the database.
      expect(local.heard).toEqual([`${tenant}:${taskKind}`]);
      if (remote) await until(() => remote.heard.length > 0, "heard by the other instance");
      await until(() => statements.includes("notifications.notifyAll"), "sent to the database");
      // Late duplicates (this instance's own echo, a second NOTIFY) would have arrived by now.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(local.heard).toEqual([`${tenant}:${taskKind}`]);
      expect(remote?.heard ?? [`${tenant}:${taskKind}`]).toEqual([`${tenant}:${taskKind}`]);
      // One statement sends it, after the commit: the transaction itself never NOTIFYs.
      expect(statements.filter((s) => s === "notifications.notifyAll")).toHaveLength(1);
      expect(statements.indexOf("notifications.notifyAll")).toBeGreaterThan(statements.lastIndexOf("commit"));
    } finally {
      await local.stop();
      await remote?.stop();
    }
  });

  it("announces nothing for a transaction that rolls back", async () => {
    const tenant = `t-${randomUUID()}`;
    const rolledBack = `k-${randomUUID()}`;
    const marker = `k-${randomUUID()}`;
    const local = await hear(instance);
    const remote = other === undefined ? undefined : await hear(other);
    try {
      statements.length = 0;
      await expect(
        start(tenant, rolledBack, 2, () => {
          throw new Error("the work failed after enqueueing");
        }),
      ).rejects.toThrow("after enqueueing");
      expect(local.heard).toEqual([]);
      // Committed after the rollback: once it is heard everywhere, the rolled-back announcement would have been too.
      await start(tenant, marker, 1);
      for (const listener of [local, remote]) if (listener) await until(() => listener.heard.includes(`${tenant}:${marker}`), "heard the marker");
      expect(local.heard).toEqual([`${tenant}:${marker}`]);
      expect(remote?.heard ?? [`${tenant}:${marker}`]).toEqual([`${tenant}:${marker}`]);
    } finally {
      await local.stop();
      await remote?.stop();
    }
  });

  it("sends what is announced while a round is in flight in one more statement, each distinct announcement once", async () => {
    const tenant = `t-${randomUUID()}`;
    const kinds = [`a-${randomUUID()}`, `b-${randomUUID()}`, `c-${randomUUID()}`];
    const local = await hear(instance);
    const remote = other === undefined ? undefined : await hear(other);
    try {
      // Nothing to announce starts no round, and leaves none pending that would hold back the next.
      instance.announce([]);
      statements.length = 0;
      // Idle: the first goes at once; the next 30 (3 distinct) wait for it and go together.
      instance.announce([{ channel: tasksChannel, payload: `${tenant}:first` }]);
      for (let i = 0; i < 30; i++) instance.announce([{ channel: tasksChannel, payload: `${tenant}:${kinds[i % 3]}` }]);
      // Every one of them reached this process's listeners at once, duplicates included (each is a wake-up).
      expect(local.heard).toHaveLength(31);
      const expected = [`${tenant}:first`, ...kinds.map((k) => `${tenant}:${k}`)];
      await until(() => statements.filter((s) => s === "notifications.notifyAll").length === 2, "sent in two statements");
      if (remote) await until(() => remote.heard.length >= 4, "heard by the other instance");
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(statements.filter((s) => s === "notifications.notifyAll")).toHaveLength(2);
      expect([...(remote?.heard ?? expected)].sort()).toEqual([...expected].sort());
      // Its own echoes wake nobody twice.
      expect(local.heard).toHaveLength(31);
    } finally {
      await local.stop();
      await remote?.stop();
    }
  });
});
