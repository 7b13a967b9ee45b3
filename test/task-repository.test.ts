// The task queue's SQL (src/operations/task.repository.ts) straight over a
// real database: what each statement picks, leases, releases and cancels,
// with the tenant's and other tenants' tasks side by side. The end-to-end
// suites reach these statements through ClaimTask and the worker protocol,
// where most of a statement's rules (which states, which kinds, the clock)
// only show as timing.
import { randomUUID } from "node:crypto";
import { sql, type Transaction } from "kysely";
import pg from "pg";
import { describe, expect, it } from "vitest";
import type { Announcement } from "../src/db/after-commit-announcer.js";
import type { Database } from "../src/db/schema.js";
import { OperationRepository, operationEventsChannel } from "../src/operations/operation.repository.js";
import type { Task } from "../src/operations/task.js";
import { NotFoundError } from "../src/shared/errors.js";
import { type TaskRow, TaskRepository, tasksChannel } from "../src/operations/task.repository.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";

interface Queue {
  readonly tasks: TaskRepository;
  readonly operations: OperationRepository;
}

/** A step of `plan`: its kind, and the steps it waits for. */
interface Step {
  readonly kind: string;
  readonly after?: readonly string[];
}

describe.each(databaseKinds)("task queue statements on %s", (kind) => {
  const suite = migratedDatabase(kind);

  /** Runs `work` in a transaction and, once it commits, announces what it registered (as UnitOfWork does). */
  async function queue<T>(tenant: string, work: (q: Queue) => Promise<T>): Promise<T> {
    const announced: Announcement[] = [];
    const announce = (channel: string, payload: string) => announced.push({ channel, payload });
    const result = await suite.db.transaction().execute((trx: Transaction<Database>) =>
      work({ tasks: new TaskRepository(trx, tenant, announce), operations: new OperationRepository(trx, tenant, announce) }),
    );
    suite.handle.announce(announced);
    return result;
  }

  /** Inserts an operation of `tenant` with the tasks of `steps`, in a transaction of its own; returns the task ids by step name. */
  async function plan(tenant: string, steps: Record<string, Step>, maxAttempts = 3): Promise<{ operationId: string; ids: Record<string, string> }> {
    const ids = Object.fromEntries(Object.keys(steps).map((step) => [step, randomUUID()]));
    const rows: TaskRow[] = Object.entries(steps).map(([step, s]) => ({
      id: ids[step]!,
      step,
      kind: s.kind,
      input: { step },
      dependsOn: (s.after ?? []).map((d) => ids[d]!),
    }));
    const operationId = await queue(tenant, async (q) => {
      const operation = await q.operations.create("test.plan", `resources/${step0(steps)}`);
      await q.tasks.insert(operation.id, rows, maxAttempts);
      return operation.id;
    });
    return { operationId, ids };
  }
  /** Makes the tasks `ids` ready since `seconds` ago: their order in the queue, set here rather than left to the clock's resolution. */
  const age = (seconds: number, ...ids: string[]) =>
    sql`update tasks set run_after = now() - make_interval(secs => ${seconds}) where id in (${sql.join(ids)})`.execute(suite.db);
  const step0 = (steps: Record<string, Step>) => Object.keys(steps)[0];
  const newKind = () => `kind-${randomUUID().slice(0, 8)}`;
  const find = (tenant: string, id: string) => queue(tenant, (q) => q.tasks.find(id));
  /** Milliseconds from now (this machine's clock, the database's too) to `date`. */
  const fromNow = (date: Date | null) => date!.getTime() - Date.now();

  it("inserts the tasks without dependencies as queued and the others as blocked, with the attempts limit", async () => {
    const k = newKind();
    const { ids, operationId } = await plan("acme", { a: { kind: k }, b: { kind: k, after: ["a"] } }, 7);
    const a = await find("acme", ids.a!);
    const b = await find("acme", ids.b!);
    expect([a.state, b.state]).toEqual(["queued", "blocked"]);
    expect(b.dependsOn).toEqual([ids.a]);
    expect(a).toMatchObject({ operationId, step: "a", kind: k, input: { step: "a" }, maxAttempts: 7, attempt: 0, traceParent: null, compensation: null });
    expect(await queue("acme", (q) => q.tasks.insert(operationId, [], 1))).toBeUndefined();
  });

  it("stores a step's compensation and its trace parent", async () => {
    const id = randomUUID();
    await queue("acme", async (q) => {
      const operation = await q.operations.create("test.plan", "resources/saga");
      const traceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      await q.tasks.insert(operation.id, [{ id, step: "s", kind: "k", input: {}, dependsOn: [], traceParent, compensation: { kind: "undo", config: { x: 1 }, maxAttempts: 4 } }], 2);
    });
    const task = await find("acme", id);
    expect(task.compensation).toEqual({ kind: "undo", config: { x: 1 }, maxAttempts: 4 });
    expect(task.traceParent).toMatch(/^00-0af7/);
  });

  it("inserts compensation tasks: those waiting for none queued, the rest blocked", async () => {
    const { operationId, ids } = await plan("acme", { done: { kind: newKind() } });
    const [first, second] = [randomUUID(), randomUUID()];
    await queue("acme", (q) =>
      q.tasks.insertCompensations(operationId, [
        { id: first, step: "undo-1", kind: "undo", input: { u: 1 }, dependsOn: [], compensates: ids.done!, maxAttempts: 5, traceParent: null },
        { id: second, step: "undo-2", kind: "undo", input: {}, dependsOn: [first], compensates: ids.done!, maxAttempts: 5, traceParent: null },
      ]),
    );
    expect(await find("acme", first)).toMatchObject({ state: "queued", compensates: ids.done, maxAttempts: 5, input: { u: 1 } });
    expect(await find("acme", second)).toMatchObject({ state: "blocked", dependsOn: [first] });
    expect(await queue("acme", (q) => q.tasks.insertCompensations(operationId, []))).toBeUndefined();
  });

  it("leases the oldest ready tasks of the asked kinds, of the caller's tenant only, up to the limit", async () => {
    const k = newKind();
    const other = newKind();
    // Another tenant's task of the kind, older than all of acme's.
    const globex = await plan("globex", { g: { kind: k } });
    const oldest = await plan("acme", { a: { kind: k } });
    await plan("acme", { x: { kind: other } });
    const younger = await plan("acme", { b: { kind: k }, blocked: { kind: k, after: ["b"] } });
    await age(30, globex.ids.g!);
    await age(20, oldest.ids.a!);
    await age(10, younger.ids.b!);

    const [leased, ...more] = await queue("acme", (q) => q.tasks.leaseReady([k], 1, "worker-1", 30_000));
    expect(more).toEqual([]);
    expect(leased!.task).toMatchObject({ id: oldest.ids.a, state: "leased", attempt: 1, workerId: "worker-1", leaseMs: 30_000, progress: 0 });
    expect(leased!.task.leaseToken).toMatch(/^[0-9a-f-]{36}$/);
    expect(fromNow(leased!.task.leaseExpiresAt)).toBeGreaterThan(20_000);
    expect(fromNow(leased!.task.leaseExpiresAt)).toBeLessThan(40_000);
    expect(leased!.resource).toBe("resources/a");

    const rest = await queue("acme", (q) => q.tasks.leaseReady([k, "no-such-kind"], 10, "worker-2", 30_000));
    expect(rest.map((r) => r.task.id)).toEqual([younger.ids.b]);
    expect(await queue("acme", (q) => q.tasks.leaseReady([k], 10, "worker-2", 30_000))).toEqual([]);
    expect((await find("globex", globex.ids.g!)).state).toBe("queued");
  });

  it("leases only the given operation's ready tasks when given one", async () => {
    const k = newKind();
    await plan("acme", { a: { kind: k } });
    const held = await plan("acme", { b: { kind: k }, c: { kind: k } });
    const leased = await queue("acme", (q) => q.tasks.leaseReady([k], 10, "w", 30_000, held.operationId));
    expect(leased.map((r) => r.task.id).sort()).toEqual([held.ids.b, held.ids.c].sort());
  });

  it("names the operation of the oldest ready task of the kinds, and none when nothing is ready", async () => {
    const k = newKind();
    expect(await queue("acme", (q) => q.tasks.oldestReadyOperation([k]))).toBeUndefined();
    const globex = await plan("globex", { g: { kind: k } });
    const first = await plan("acme", { a: { kind: k } });
    const second = await plan("acme", { b: { kind: k } });
    await age(30, globex.ids.g!);
    await age(20, first.ids.a!);
    await age(10, second.ids.b!);
    expect(await queue("acme", (q) => q.tasks.oldestReadyOperation([k]))).toBe(first.operationId);
  });

  it("counts the tasks leased to a worker now, in the tenant", async () => {
    const k = newKind();
    const worker = `worker-${randomUUID()}`;
    await plan("acme", { a: { kind: k }, b: { kind: k }, c: { kind: k } });
    await plan("globex", { g: { kind: k } });
    await queue("globex", (q) => q.tasks.leaseReady([k], 10, worker, 30_000));
    const [a] = await queue("acme", (q) => q.tasks.leaseReady([k], 2, worker, 30_000));
    await queue("acme", (q) => q.tasks.finish(a!.task.id, "succeeded"));
    expect(await queue("acme", (q) => q.tasks.leasedTo(worker))).toBe(1);
    expect(await queue("acme", (q) => q.tasks.leasedTo("someone-else"))).toBe(0);
  });

  it("puts a requeued task back after its delay, its lease revoked, and does not lease it before", async () => {
    const k = newKind();
    const { ids } = await plan("acme", { a: { kind: k } });
    await queue("acme", (q) => q.tasks.leaseReady([k], 1, "w", 30_000));
    const requeued = await queue("acme", (q) => q.tasks.requeue(ids.a!, 60_000));
    expect(requeued).toMatchObject({ state: "queued", leaseToken: null, leaseExpiresAt: null, progress: 0, attempt: 1 });
    expect(await queue("acme", (q) => q.tasks.leaseReady([k], 1, "w", 30_000))).toEqual([]);
    expect(await queue("acme", (q) => q.tasks.oldestReadyOperation([k]))).toBeUndefined();
    await queue("acme", (q) => q.tasks.requeue(ids.a!, 0));
    expect((await queue("acme", (q) => q.tasks.leaseReady([k], 1, "w", 30_000))).map((r) => r.task.attempt)).toEqual([2]);
  });

  it("leases a task requeued ready now to a claim that starts any time after, however soon", async () => {
    // run_after is written from now() and compared with a later transaction's now(). Stored rounded to the
    // millisecond (as timestamptz(3) did), half of such writes landed in the future, and a claim in the same
    // half millisecond skipped the task. Within one transaction now() does not move, so each round here is
    // that claim at its soonest: with rounding, 20 rounds all passing would be a one-in-a-million chance.
    const k = newKind();
    const { ids } = await plan("acme", { a: { kind: k } });
    for (let round = 1; round <= 20; round++) {
      const leased = await queue("acme", async (q) => {
        await q.tasks.requeue(ids.a!, 0);
        return q.tasks.leaseReady([k], 1, "w", 30_000);
      });
      expect(leased.map((r) => r.task.attempt)).toEqual([round]);
    }
  });

  it("finds the leases that expired, and only those of the tenant", async () => {
    const k = newKind();
    const { ids } = await plan("acme", { expired: { kind: k }, live: { kind: k } });
    const globex = await plan("globex", { g: { kind: k } });
    await queue("acme", (q) => q.tasks.leaseReady([k], 2, "w", 30_000));
    await queue("globex", (q) => q.tasks.leaseReady([k], 1, "w", 30_000));
    await sql`update tasks set lease_expires_at = now() - interval '1 second' where id in (${ids.expired}, ${globex.ids.g})`.execute(suite.db);
    const expired = await queue("acme", (q) => q.tasks.expiredLeases(10));
    expect(expired.map((t: Task) => t.id)).toEqual([ids.expired]);
  });

  it("extends a lease by the task's lease time, recording progress only when given", async () => {
    const k = newKind();
    const { ids } = await plan("acme", { a: { kind: k } });
    await queue("acme", (q) => q.tasks.leaseReady([k], 1, "w", 600_000));
    await sql`update tasks set lease_expires_at = now() where id = ${ids.a}`.execute(suite.db);
    const extended = await queue("acme", (q) => q.tasks.extend(ids.a!, 0.5));
    expect(extended.progress).toBe(0.5);
    expect(fromNow(extended.leaseExpiresAt)).toBeGreaterThan(500_000);
    expect(fromNow(extended.leaseExpiresAt)).toBeLessThan(700_000);
    expect((await queue("acme", (q) => q.tasks.extend(ids.a!, undefined))).progress).toBe(0.5);
  });

  it("finishes a task: its lease revoked, its result kept, full progress only on success", async () => {
    const k = newKind();
    const { ids } = await plan("acme", { ok: { kind: k }, bad: { kind: k } });
    await queue("acme", (q) => q.tasks.leaseReady([k], 2, "w", 30_000));
    await queue("acme", (q) => q.tasks.extend(ids.bad!, 0.25));
    const ok = await queue("acme", (q) => q.tasks.finish(ids.ok!, "succeeded", { answer: 42 }));
    expect(ok).toMatchObject({ state: "done", outcome: "succeeded", result: { answer: 42 }, progress: 1, leaseToken: null, leaseExpiresAt: null });
    const bad = await queue("acme", (q) => q.tasks.finish(ids.bad!, "failed"));
    expect(bad).toMatchObject({ state: "done", outcome: "failed", result: null, progress: 0.25, leaseToken: null });
  });

  it("releases the blocked tasks whose every dependency succeeded, and no others", async () => {
    const k = newKind();
    const { operationId, ids } = await plan("acme", {
      a: { kind: k },
      b: { kind: k },
      afterA: { kind: k, after: ["a"] },
      afterBoth: { kind: k, after: ["a", "b"] },
      afterFailed: { kind: "never", after: ["b"] },
    });
    await queue("acme", (q) => q.tasks.leaseReady([k], 2, "w", 30_000));
    await queue("acme", (q) => q.tasks.finish(ids.a!, "succeeded"));
    expect((await queue("acme", (q) => q.tasks.release(operationId))).map((t) => t.id)).toEqual([ids.afterA]);
    await queue("acme", (q) => q.tasks.finish(ids.b!, "failed"));
    expect(await queue("acme", (q) => q.tasks.release(operationId))).toEqual([]);
    expect((await find("acme", ids.afterBoth!)).state).toBe("blocked");
    expect((await find("acme", ids.afterA!)).state).toBe("queued");
  });

  it("cancels an operation's open tasks: leased ones only when asked, their leases revoked", async () => {
    const k = newKind();
    const { operationId, ids } = await plan("acme", { leased: { kind: k }, queued: { kind: newKind() }, blocked: { kind: k, after: ["leased"] }, done: { kind: newKind() } });
    await queue("acme", (q) => q.tasks.leaseReady([k], 1, "w", 30_000));
    await queue("acme", (q) => q.tasks.finish(ids.done!, "succeeded"));
    await queue("acme", (q) => q.tasks.cancelOpen(operationId, false));
    const states = async () =>
      Object.fromEntries(await Promise.all(Object.entries(ids).map(async ([step, id]) => [step, `${(await find("acme", id)).state} ${(await find("acme", id)).outcome}`])));
    expect(await states()).toEqual({ leased: "leased null", queued: "done cancelled", blocked: "done cancelled", done: "done succeeded" });
    await queue("acme", (q) => q.tasks.cancelOpen(operationId, true));
    expect(await states()).toMatchObject({ leased: "done cancelled", done: "done succeeded" });
    expect((await find("acme", ids.leased!)).leaseToken).toBeNull();
  });

  it("locks tasks by id (in id order) and reads an operation's tasks in creation order, in the tenant only", async () => {
    const k = newKind();
    const one = await plan("acme", { b: { kind: k }, a: { kind: k } });
    const globex = await plan("globex", { g: { kind: k } });
    expect(await queue("acme", (q) => q.tasks.lockAll([]))).toEqual([]);
    const locked = await queue("acme", (q) => q.tasks.lockAll([one.ids.b!, one.ids.a!, one.ids.a!, globex.ids.g!, randomUUID()]));
    expect(locked.map((t) => t.id)).toEqual([one.ids.a!, one.ids.b!].sort());
    expect(locked.every((t) => t.operationId === one.operationId)).toBe(true);
    // Inserted in one statement: same creation time, then by step.
    expect((await queue("acme", (q) => q.tasks.ofOperation(one.operationId))).map((t) => t.step)).toEqual(["a", "b"]);
  });

  it("announces the kinds of the tasks it inserts queued, and not those of the tasks it inserts blocked", async () => {
    const [ready, waiting] = [newKind(), newKind()];
    const [a, b] = [randomUUID(), randomUUID()];
    const announced: string[] = [];
    await suite.db.transaction().execute(async (trx) => {
      const announce = (channel: string, payload: string) => announced.push(`${channel} ${payload}`);
      const operation = await new OperationRepository(trx, "acme", announce).create("test.plan", "resources/r");
      await new TaskRepository(trx, "acme", announce).insert(
        operation.id,
        [
          { id: a, step: "a", kind: ready, input: {}, dependsOn: [] },
          { id: b, step: "b", kind: waiting, input: {}, dependsOn: [a] },
        ],
        1,
      );
    });
    expect(announced).toEqual([`${tasksChannel} acme:${ready}`]);
  });

  it("announces queued tasks as <tenant>:<kind> when inserted, released or requeued now", async () => {
    const k = newKind();
    const heard: string[] = [];
    const unlisten = await suite.handle.listen(tasksChannel, (payload) => heard.push(payload));
    try {
      const hear = async (payload: string) => {
        for (let waited = 0; !heard.includes(payload); waited += 20) {
          if (waited > 10_000) throw new Error(`never heard ${payload}; heard ${heard.join(", ")}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        heard.length = 0;
      };
      const { operationId, ids } = await plan("acme", { a: { kind: k }, b: { kind: `${k}-then`, after: ["a"] } });
      await hear(`acme:${k}`);
      await queue("acme", (q) => q.tasks.leaseReady([k], 1, "w", 30_000));
      await queue("acme", (q) => q.tasks.requeue(ids.a!, 0));
      await hear(`acme:${k}`);
      await queue("acme", (q) => q.tasks.leaseReady([k], 1, "w", 30_000));
      await queue("acme", (q) => q.tasks.finish(ids.a!, "succeeded"));
      await queue("acme", (q) => q.tasks.release(operationId));
      await hear(`acme:${k}-then`);
    } finally {
      await unlisten();
    }
  });
  it("cancels every open task at once when asked to include leased ones", async () => {
    const k = newKind();
    const { operationId, ids } = await plan("acme", { leased: { kind: k }, queued: { kind: newKind() }, blocked: { kind: k, after: ["leased"] } });
    await queue("acme", (q) => q.tasks.leaseReady([k], 1, "w", 30_000));
    await queue("acme", (q) => q.tasks.cancelOpen(operationId, true));
    for (const id of Object.values(ids)) expect(await find("acme", id)).toMatchObject({ state: "done", outcome: "cancelled", leaseToken: null });
  });

  it("answers NOT_FOUND naming a task for an id the tenant does not have", async () => {
    const { ids } = await plan("globex", { g: { kind: newKind() } });
    for (const read of [(q: Queue) => q.tasks.find(ids.g!), (q: Queue) => q.tasks.lock(ids.g!)]) {
      const err = await queue("acme", read).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect(err).toMatchObject({ resource: "task", id: ids.g });
    }
  });

  it("announces a requeue only when the task is ready now", async () => {
    const k = newKind();
    const heard: string[] = [];
    const unlisten = await suite.handle.listen(tasksChannel, (payload) => heard.push(payload));
    try {
      const { ids } = await plan("acme", { a: { kind: k } });
      await queue("acme", (q) => q.tasks.leaseReady([k], 1, "w", 30_000));
      heard.length = 0;
      await queue("acme", (q) => q.tasks.requeue(ids.a!, 60_000));
      // Committed after the requeue: once it is heard, a requeue announcement would have been too.
      const marker = `${k}-marker`;
      await plan("acme", { m: { kind: marker } });
      for (let waited = 0; !heard.includes(`acme:${marker}`); waited += 20) {
        if (waited > 10_000) throw new Error(`never heard the marker; heard ${heard.join(", ")}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(heard).not.toContain(`acme:${k}`);
    } finally {
      await unlisten();
    }
  });

  it.runIf(kind === "postgres")("lock holds the task's row until the transaction ends (PostgreSQL only)", async () => {
    const { ids } = await plan("acme", { a: { kind: newKind() } });
    const othersCanLock = () =>
      suite.db.transaction().execute(async (trx) => {
        const rows = await sql`select id from tasks where id = ${ids.a} for update skip locked`.execute(trx);
        return rows.rows.length === 1;
      });
    expect(await queue("acme", async (q) => (await q.tasks.find(ids.a!), othersCanLock()))).toBe(true);
    expect(await queue("acme", async (q) => (await q.tasks.lock(ids.a!), othersCanLock()))).toBe(false);
  });
  it("says whether anything is claimable: a ready task of the kinds or an expired lease, in the tenant only", async () => {
    const k = newKind();
    // Tenants of their own: earlier tests leave expired leases in acme.
    const [acme, globex] = [`acme-${k}`, `globex-${k}`];
    const claimable = (tenant: string, kinds = [k]) => queue(tenant, (q) => q.tasks.claimable(kinds));
    const { ids } = await plan(globex, { g: { kind: k } });
    expect(await claimable(acme)).toBe(false);
    expect(await claimable(globex)).toBe(true);
    expect(await claimable(globex, [newKind()])).toBe(false);
    await queue(globex, (q) => q.tasks.leaseReady([k], 1, "w", 30_000));
    expect(await claimable(globex)).toBe(false);
    await sql`update tasks set lease_expires_at = now() - interval '1 second' where id = ${ids.g}`.execute(suite.db);
    expect(await claimable(globex, [newKind()])).toBe(true);
    await queue(globex, (q) => q.tasks.finish(ids.g!, "succeeded"));
  });

  it("finishes a task among its operation's tasks, returned in creation order, NOT_FOUND for another tenant's", async () => {
    const k = newKind();
    const { operationId, ids } = await plan("acme", { b: { kind: k }, a: { kind: k } });
    const tasks = await queue("acme", (q) => q.tasks.finishAmong(ids.b!, "succeeded", { ok: true }));
    expect(tasks.map((t) => [t.step, t.state, t.outcome])).toEqual([["a", "queued", null], ["b", "done", "succeeded"]]);
    expect(tasks[1]).toMatchObject({ result: { ok: true }, progress: 1 });
    const err = await queue("globex", (q) => q.tasks.finishAmong(ids.a!, "failed")).catch((e: unknown) => e);
    expect(err).toMatchObject({ resource: "task", id: ids.a });
    expect((await find("acme", ids.a!)).state).toBe("queued");
  });

  it("finishes a batch's tasks across operations in one statement: each with its result, every task of their operations returned by operation in creation order", async () => {
    const k = newKind();
    const one = await plan("acme", { b: { kind: k }, a: { kind: k }, c: { kind: k } });
    const two = await plan("acme", { x: { kind: k } });
    const other = await plan("globex", { g: { kind: k } });
    const tasks = await queue("acme", (q) =>
      q.tasks.finishAllAmong(
        [
          { id: two.ids.x!, result: { x: 1 } },
          { id: one.ids.c!, result: null },
          { id: one.ids.b!, result: { b: true } },
          // Another tenant's task and an unknown one are left out, and change nothing.
          { id: other.ids.g!, result: {} },
          { id: randomUUID(), result: {} },
        ],
        "succeeded",
      ),
    );
    const byOperation = [one, two].sort((p, q) => (p.operationId < q.operationId ? -1 : 1));
    const steps = (p: typeof one) => (p === one ? ["a", "b", "c"] : ["x"]);
    expect(tasks.map((t) => t.step)).toEqual(byOperation.flatMap(steps));
    const by = Object.fromEntries(tasks.map((t) => [t.step, t]));
    expect(by.a).toMatchObject({ state: "queued", outcome: null, result: null });
    expect(by.b).toMatchObject({ state: "done", outcome: "succeeded", result: { b: true }, progress: 1, leaseToken: null });
    expect(by.c).toMatchObject({ state: "done", outcome: "succeeded", result: null });
    expect(by.x).toMatchObject({ state: "done", result: { x: 1 } });
    expect((await find("acme", one.ids.b!)).result).toEqual({ b: true });
    expect((await find("globex", other.ids.g!)).state).toBe("queued");
    expect(await queue("acme", (q) => q.tasks.finishAllAmong([], "succeeded"))).toEqual([]);
  });

  it("records many operations in one statement: each its own patch and events, numbered on from its last sequence, announced once", async () => {
    const first = await plan("acme", { a: { kind: newKind() } });
    const second = await plan("acme", { a: { kind: newKind() } });
    // The first has events already: its new ones follow them.
    await queue("acme", (q) => q.operations.record(first.operationId, { stage: "running" }, [{ step: "", payload: { type: "stage", stage: "running" } }]));
    const heard: string[] = [];
    const unlisten = await suite.handle.listen(operationEventsChannel, (payload) => heard.push(payload));
    try {
      const recorded = await queue("acme", async (q) => {
        await q.operations.lockOfTasks([first.ids.a!, second.ids.a!]);
        return q.operations.recordAll([
          { operationId: first.operationId, patch: { progress: 0.5, message: "half" }, events: [{ step: "a", payload: { type: "progress", progress: 0.5, stepProgress: 1, message: "half" } }] },
          {
            operationId: second.operationId,
            patch: { state: "succeeded", stage: "succeeded", progress: 1, message: "done", result: { ok: true }, ended: true },
            events: [
              { step: "a", payload: { type: "progress", progress: 1, stepProgress: 1, message: "done" } },
              { step: "", payload: { type: "completion", state: "succeeded", result: { ok: true }, error: null } },
            ],
          },
        ]);
      });
      const byId = new Map(recorded.map((o) => [o.id, o]));
      expect(byId.get(first.operationId)).toMatchObject({ state: "queued", stage: "running", progress: 0.5, message: "half", result: null, endTime: null, lastSequence: 2 });
      expect(byId.get(second.operationId)).toMatchObject({ state: "succeeded", stage: "succeeded", progress: 1, message: "done", result: { ok: true }, lastSequence: 2 });
      expect(byId.get(second.operationId)!.endTime).toBeInstanceOf(Date);
      const events = (id: string) => queue("acme", (q) => q.operations.events(id, 0, 10));
      expect((await events(first.operationId)).map((e) => [e.sequence, e.payload.type])).toEqual([[1, "stage"], [2, "progress"]]);
      expect((await events(second.operationId)).map((e) => [e.sequence, e.step, e.payload])).toEqual([
        [1, "a", { type: "progress", progress: 1, stepProgress: 1, message: "done" }],
        [2, "", { type: "completion", state: "succeeded", result: { ok: true }, error: null }],
      ]);
      for (const expected of [`acme:${first.operationId}:2`, `acme:${second.operationId}:2`]) {
        for (let waited = 0; !heard.includes(expected); waited += 20) {
          if (waited > 10_000) throw new Error(`never heard ${expected}; heard ${heard.join(", ")}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      expect(await queue("acme", (q) => q.operations.recordAll([]))).toEqual([]);
    } finally {
      await unlisten();
    }
  });

  /** Copies the rows of `table` whose `column` is `value` from one tenant to another, ids kept: keys are per tenant, so two tenants may hold the same ids. */
  const copyToTenant = (table: "operations" | "tasks", column: "id" | "operation_id", value: string, from: string, to: string) =>
    sql`insert into ${sql.table(table)}
      select (jsonb_populate_record(null::${sql.table(table)}, to_jsonb(r) || jsonb_build_object('tenant_id', ${to}::text))).*
      from ${sql.table(table)} r where r.tenant_id = ${from} and ${sql.ref(`r.${column}`)} = ${value}`.execute(suite.db);

  it("finishAmong answers NOT_FOUND, changing nothing, for a task id the tenant does not have", async () => {
    const { ids } = await plan("acme", { a: { kind: newKind() } });
    const missing = randomUUID();
    const err = await queue("acme", (q) => q.tasks.finishAmong(missing, "failed")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err).toMatchObject({ resource: "task", id: missing });
    expect((await find("acme", ids.a!)).state).toBe("queued");
  });

  it("finishAmong finishes and returns the caller's tenant's tasks only, when another tenant has the same operation and task ids", async () => {
    const { operationId, ids } = await plan("acme", { a: { kind: newKind() }, b: { kind: newKind() } });
    await copyToTenant("operations", "id", operationId, "acme", "globex");
    await copyToTenant("tasks", "operation_id", operationId, "acme", "globex");
    const tasks = await queue("acme", (q) => q.tasks.finishAmong(ids.a!, "succeeded"));
    expect(tasks.map((t) => [t.id, t.state])).toEqual([[ids.a, "done"], [ids.b, "queued"]]);
    const theirs = await queue("globex", (q) => q.tasks.ofOperation(operationId));
    expect(theirs.map((t) => [t.id, t.state])).toEqual([[ids.a, "queued"], [ids.b, "queued"]]);
  });

  /** Runs `work` while another session holds the row lock `lock` takes (a `select … for update`), then lets it go. */
  async function whileAnotherHolds<T>(lock: string, params: unknown[], work: () => Promise<T>): Promise<T> {
    const holder = new pg.Client({ connectionString: suite.url });
    await holder.connect();
    try {
      await holder.query("begin");
      expect((await holder.query(lock, params)).rowCount).toBe(1);
      return await work();
    } finally {
      await holder.query("rollback");
      await holder.end();
    }
  }
  /** The ids leaseReady leases to acme's worker; a pick that waited for a held row fails after 5 s instead of hanging. */
  const leaseWithoutWaiting = (kinds: string[], sharedOperation?: string) =>
    suite.db.transaction().execute(async (trx) => {
      await sql`set local lock_timeout = '5s'`.execute(trx);
      const leased = await new TaskRepository(trx, "acme", () => undefined).leaseReady(kinds, 10, "w", 30_000, sharedOperation);
      return leased.map((r) => r.task.id);
    });
  const holdTask = "select 1 from tasks where tenant_id = 'acme' and id = $1 for update";

  it.runIf(kind === "postgres")("leases around a task another transaction holds, without waiting for it, within a given operation too (PostgreSQL only: SKIP LOCKED)", async () => {
    for (const withinOperation of [true, false]) {
      const k = newKind();
      const { operationId, ids } = await plan("acme", { held: { kind: k }, free: { kind: k } });
      await age(20, ids.held!);
      await age(10, ids.free!);
      const shared = withinOperation ? operationId : undefined;
      expect(await whileAnotherHolds(holdTask, [ids.held], () => leaseWithoutWaiting([k], shared))).toEqual([ids.free]);
      expect(await leaseWithoutWaiting([k], shared)).toEqual([ids.held]);
    }
  });

  it.runIf(kind === "postgres")("leases no task of an operation a writer holds, without waiting for it (PostgreSQL only: SKIP LOCKED)", async () => {
    const k = newKind();
    const held = await plan("acme", { a: { kind: k } });
    const free = await plan("acme", { b: { kind: k } });
    await age(20, held.ids.a!);
    await age(10, free.ids.b!);
    const holdOperation = "select 1 from operations where tenant_id = 'acme' and id = $1 for update";
    expect(await whileAnotherHolds(holdOperation, [held.operationId], () => leaseWithoutWaiting([k]))).toEqual([free.ids.b]);
    expect(await leaseWithoutWaiting([k])).toEqual([held.ids.a]);
  });
});
