// The operations' SQL (src/operations/operation.repository.ts) straight over
// a real database: what each statement reads, patches, appends and locks,
// with other tenants' operations beside the caller's. The end-to-end suites
// reach these statements through the operation and worker services, where
// most of a statement's rules (which fields a patch leaves alone, which
// sequence an event gets, which tenant a lock reaches) do not show.
import { randomUUID } from "node:crypto";
import { sql, type Transaction } from "kysely";
import pg from "pg";
import { describe, expect, it } from "vitest";
import type { Database } from "../src/db/schema.js";
import type { NewEvent } from "../src/operations/operation.js";
import type { Announcement } from "../src/db/after-commit-announcer.js";
import { OperationRepository, operationEventsChannel } from "../src/operations/operation.repository.js";
import { TaskRepository } from "../src/operations/task.repository.js";
import { NotFoundError } from "../src/shared/errors.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";

const log = (message: string): NewEvent => ({ step: "s", payload: { type: "log", level: "info", message } });

describe.each(databaseKinds)("operation statements on %s", (kind) => {
  const suite = migratedDatabase(kind);

  /** Runs `work` in a transaction and, once it commits, announces what it registered (as UnitOfWork does). */
  async function operations<T>(tenant: string, work: (o: OperationRepository, trx: Transaction<Database>) => Promise<T>): Promise<T> {
    const announced: Announcement[] = [];
    const result = await suite.db.transaction().execute((trx) => work(new OperationRepository(trx, tenant, (channel, payload) => announced.push({ channel, payload })), trx));
    suite.handle.announce(announced);
    return result;
  }
  const create = (tenant: string, opKind = "test.op", resource = "resources/r") => operations(tenant, (o) => o.create(opKind, resource));
  const get = (tenant: string, id: string) => operations(tenant, (o) => o.get(id));
  const events = (tenant: string, id: string, after = 0, limit = 100) => operations(tenant, (o) => o.events(id, after, limit));
  const newTenant = () => `tenant-${randomUUID().slice(0, 8)}`;

  it("creates a queued operation, and gets it in its tenant only", async () => {
    const op = await create("acme", "test.create", "resources/created");
    expect(op).toMatchObject({
      kind: "test.create",
      resource: "resources/created",
      state: "queued",
      progress: 0,
      stage: "",
      message: "",
      attempt: 0,
      result: null,
      error: null,
      cancelRequested: false,
      compensations: [],
      lastSequence: 0,
      startTime: null,
      endTime: null,
    });
    expect(await get("acme", op.id)).toEqual(op);
    const elsewhere = await get("globex", op.id).catch((e: unknown) => e);
    expect(elsewhere).toBeInstanceOf(NotFoundError);
    expect(elsewhere).toMatchObject({ resource: "operation", id: op.id });
  });

  it("lists the tenant's operations newest first, filtered by state, kind and resource, after a keyset position", async () => {
    const tenant = newTenant();
    const a = await create(tenant, "test.a", "resources/1");
    const b = await create(tenant, "test.b", "resources/1");
    const c = await create(tenant, "test.a", "resources/2");
    await create("globex", "test.a", "resources/1");
    // Creation times set apart, rather than left to the clock's resolution.
    for (const [id, seconds] of [[a.id, 30], [b.id, 20], [c.id, 10]] as const) {
      await sql`update operations set create_time = now() - make_interval(secs => ${seconds}) where tenant_id = ${tenant} and id = ${id}`.execute(suite.db);
    }
    await operations(tenant, (o) => o.record(b.id, { state: "running" }));
    const list = (filter: Parameters<OperationRepository["list"]>[0], limit = 10, after?: readonly unknown[]) =>
      operations(tenant, async (o) => (await o.list(filter, limit, after)).map((op) => op.id));
    expect(await list({})).toEqual([c.id, b.id, a.id]);
    expect(await list({ state: "running" })).toEqual([b.id]);
    expect(await list({ state: "queued" })).toEqual([c.id, a.id]);
    expect(await list({ kind: "test.a" })).toEqual([c.id, a.id]);
    expect(await list({ resource: "resources/1" })).toEqual([b.id, a.id]);
    expect(await list({ kind: "test.a", resource: "resources/1", state: "queued" })).toEqual([a.id]);
    expect(await list({}, 2)).toEqual([c.id, b.id]);
    const newest = await get(tenant, c.id);
    expect(await list({}, 10, [newest.createTime, newest.id])).toEqual([b.id, a.id]);
  });

  it("records a patch: each field given and nothing else, the start time once, the end time when ended", async () => {
    const { id } = await create("acme");
    const untouched = await operations("acme", (o) => o.record(id, { progress: 0.1 }));
    expect(untouched.operation).toMatchObject({ state: "queued", progress: 0.1, startTime: null, endTime: null, lastSequence: 0 });

    const started = (await operations("acme", (o) => o.record(id, { state: "running", stage: "st", message: "m", attempt: 2, started: true }))).operation;
    expect(started).toMatchObject({ state: "running", progress: 0.1, stage: "st", message: "m", attempt: 2, endTime: null });
    expect(started.startTime).toBeInstanceOf(Date);
    await sql`update operations set start_time = start_time - interval '1 hour' where tenant_id = 'acme' and id = ${id}`.execute(suite.db);
    const restarted = (await operations("acme", (o) => o.record(id, { started: true }))).operation;
    expect(restarted.startTime!.getTime()).toBe(started.startTime!.getTime() - 3_600_000);

    const compensations = [{ step: "s", kind: "undo", outcome: "pending", attempt: 0, error: null }] as const;
    const ended = (
      await operations("acme", (o) =>
        o.record(id, { result: { n: 1 }, error: { code: 2, message: "boom" }, cancelRequested: true, compensations, ended: true }),
      )
    ).operation;
    expect(ended).toMatchObject({ state: "running", progress: 0.1, stage: "st", message: "m", attempt: 2, result: { n: 1 }, error: { code: 2, message: "boom" }, cancelRequested: true, compensations });
    expect(ended.endTime).toBeInstanceOf(Date);
    const cleared = (await operations("acme", (o) => o.record(id, { result: null, error: null, cancelRequested: false }))).operation;
    expect(cleared).toMatchObject({ result: null, error: null, cancelRequested: false, compensations, state: "running", stage: "st" });
  });

  it("appends events with gapless sequences after the last, in order, and reads them after a sequence up to a limit", async () => {
    const { id } = await create("acme");
    const first = (await operations("acme", (o) => o.record(id, { stage: "one" }, [log("a"), { step: "x", payload: { type: "stage", stage: "one" } }]))).operation;
    expect(first).toMatchObject({ stage: "one", lastSequence: 2 });
    const second = (await operations("acme", (o) => o.record(id, { progress: 0.5 }, [log("b")]))).operation;
    expect(second).toMatchObject({ stage: "one", progress: 0.5, lastSequence: 3 });
    const all = await events("acme", id);
    expect(all.map((e) => [e.sequence, e.step, e.payload])).toEqual([
      [1, "s", { type: "log", level: "info", message: "a" }],
      [2, "x", { type: "stage", stage: "one" }],
      [3, "s", { type: "log", level: "info", message: "b" }],
    ]);
    expect(all.every((e) => e.operationId === id && e.time instanceof Date)).toBe(true);
    expect((await events("acme", id, 1, 1)).map((e) => e.sequence)).toEqual([2]);
    expect((await events("acme", id, 3)).map((e) => e.sequence)).toEqual([]);
    expect(await events("globex", id)).toEqual([]);
  });

  it("announces the last sequence of a recording and of a claim as <tenant>:<operation>:<sequence>", async () => {
    const heard: string[] = [];
    const unlisten = await suite.handle.listen(operationEventsChannel, (payload) => heard.push(payload));
    const hear = async (payload: string) => {
      for (let waited = 0; !heard.includes(payload); waited += 20) {
        if (waited > 10_000) throw new Error(`never heard ${payload}; heard ${heard.join(", ")}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    try {
      const { id } = await create("acme");
      await operations("acme", (o) => o.record(id, {}, [log("a"), log("b")]));
      await hear(`acme:${id}:2`);
      // A queued operation's claim: its running stage and the claim's event.
      const claimed = await create("acme");
      await operations("acme", (o) => o.appendClaims([{ operationId: claimed.id, claimed: 1, events: [log("c")] }]));
      await hear(`acme:${claimed.id}:2`);
    } finally {
      await unlisten();
    }
  });

  it("announces nothing for a recording without events, of one operation or of many, and the last sequence for one with events", async () => {
    const { id } = await create("acme");
    const announced: string[] = [];
    const recording = <T>(work: (o: OperationRepository) => Promise<T>) =>
      suite.db.transaction().execute((trx) => work(new OperationRepository(trx, "acme", (channel, payload) => announced.push(`${channel} ${payload}`))));
    expect((await recording((o) => o.record(id, { message: "quiet" }))).operation).toMatchObject({ message: "quiet", lastSequence: 0 });
    expect(await recording((o) => o.recordAll([{ operationId: id, patch: { stage: "still" }, events: [] }]))).toMatchObject([{ stage: "still", message: "quiet", lastSequence: 0 }]);
    expect(announced).toEqual([]);
    await recording((o) => o.recordAll([{ operationId: id, patch: {}, events: [log("a"), log("b")] }]));
    expect(announced).toEqual([`${operationEventsChannel} acme:${id}:2`]);
    expect((await events("acme", id)).map((e) => e.sequence)).toEqual([1, 2]);
  });

  it("answers NOT_FOUND naming the operation when recording on one the tenant does not have, with or without events, changing nothing", async () => {
    const { id } = await create("acme");
    for (const newEvents of [[], [log("x")]]) {
      const err = await operations("globex", (o) => o.record(id, { progress: 0.9 }, newEvents)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect(err).toMatchObject({ resource: "operation", id });
    }
    expect(await get("acme", id)).toMatchObject({ progress: 0, lastSequence: 0 });
    expect(await events("acme", id)).toEqual([]);
  });

  it("finds the operation of a task, in the tenant only, and none for a task it does not have", async () => {
    const op = await create("acme");
    const taskId = randomUUID();
    await suite.db.transaction().execute((trx) => new TaskRepository(trx, "acme", () => undefined).insert(op.id, [{ id: taskId, step: "s", kind: "k", input: {}, dependsOn: [] }], 1));
    expect((await operations("acme", (o) => o.lockOfTask(taskId)))?.id).toBe(op.id);
    expect(await operations("globex", (o) => o.lockOfTask(taskId))).toBeUndefined();
    expect(await operations("acme", (o) => o.lockOfTask(randomUUID()))).toBeUndefined();
  });

  it("records claims: counts the attempts, starts a queued operation with a running stage event first, appends the events in order", async () => {
    const queued = await create("acme");
    const running = await create("acme");
    await operations("acme", (o) => o.record(running.id, { state: "running", stage: "busy", started: true }, [log("started")]));
    await operations("acme", (o) =>
      o.appendClaims([
        { operationId: running.id, claimed: 1, events: [log("r1")] },
        { operationId: queued.id, claimed: 2, events: [log("q1"), log("q2")] },
      ]),
    );
    const started = await get("acme", queued.id);
    expect(started).toMatchObject({ state: "running", stage: "running", attempt: 2, lastSequence: 3 });
    expect(started.startTime).toBeInstanceOf(Date);
    expect((await events("acme", queued.id)).map((e) => [e.sequence, e.payload])).toEqual([
      [1, { type: "stage", stage: "running" }],
      [2, { type: "log", level: "info", message: "q1" }],
      [3, { type: "log", level: "info", message: "q2" }],
    ]);
    expect(await get("acme", running.id)).toMatchObject({ state: "running", stage: "busy", attempt: 1, lastSequence: 2 });
    expect((await events("acme", running.id)).map((e) => [e.sequence, e.payload])).toEqual([
      [1, { type: "log", level: "info", message: "started" }],
      [2, { type: "log", level: "info", message: "r1" }],
    ]);
    await operations("acme", (o) => o.appendClaims([]));
  });

  it("records claims on the tenant's operations only", async () => {
    const op = await create("acme");
    await operations("globex", (o) => o.appendClaims([{ operationId: op.id, claimed: 1, events: [log("x")] }]));
    expect(await get("acme", op.id)).toMatchObject({ state: "queued", attempt: 0, lastSequence: 0 });
    expect(await events("acme", op.id)).toEqual([]);
  });

  it.runIf(kind === "postgres")("shares the operation's row for claims and locks it for a task's completion until the transaction ends (PostgreSQL only: row locks)", async () => {
    const op = await create("acme");
    const taskId = randomUUID();
    await suite.db.transaction().execute((trx) => new TaskRepository(trx, "acme", () => undefined).insert(op.id, [{ id: taskId, step: "s", kind: "k", input: {}, dependsOn: [] }], 1));
    const prober = new pg.Client({ connectionString: suite.url });
    await prober.connect();
    try {
      /** Whether another session could take `mode` on the operation's row now, without waiting. */
      const othersCould = async (mode: "update" | "key share") => {
        await prober.query("begin");
        try {
          await prober.query(`select id from operations where tenant_id = 'acme' and id = $1 for ${mode} nowait`, [op.id]);
          return true;
        } catch (err) {
          if ((err as { code?: string }).code === "55P03") return false; // lock_not_available
          throw err;
        } finally {
          await prober.query("rollback");
        }
      };
      const whileHeld = (hold: (o: OperationRepository) => Promise<unknown>) =>
        operations("acme", async (o) => {
          await hold(o);
          return { update: await othersCould("update"), keyShare: await othersCould("key share") };
        });
      expect(await whileHeld((o) => o.shareForClaims(op.id))).toEqual({ update: false, keyShare: true });
      expect(await whileHeld((o) => o.lockOfTask(taskId))).toEqual({ update: false, keyShare: false });
      expect(await whileHeld((o) => o.get(op.id))).toEqual({ update: true, keyShare: true });
      expect(await whileHeld((o) => o.shareForClaims(randomUUID()))).toEqual({ update: true, keyShare: true });
    } finally {
      await prober.end();
    }
  });
});

