import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { type DatabaseHandle, openDatabase } from "../src/db/database.js";
import { migrateToLatest } from "../src/db/migrator.js";
import type { Repositories } from "../src/db/repositories.js";
import { UnitOfWork } from "../src/db/unit-of-work.js";
import { toConnectError } from "../src/rpc/error-mapping.js";
import { DeadlineExceededError, InternalError, NotFoundError } from "../src/shared/errors.js";
import type { NewUser } from "../src/users/user.js";
import { clientFor } from "./support/clients.js";
import { createTestDatabase, databaseKinds, type TestDatabase } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";

type Users = Client<typeof UserService>;

async function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => "OK",
    (err: unknown) => Code[ConnectError.from(err).code],
  );
}

/** Every user of the caller's tenant, across all pages. */
async function allUsers(client: Users) {
  const out = [];
  let pageToken = "";
  do {
    const page = await client.listUsers({ pageSize: 1000, pageToken });
    out.push(...page.users);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return out;
}

const displayNameMask = () => create(FieldMaskSchema, { paths: ["display_name"] });

describe.each(databaseKinds)("one transaction per request on %s", (kind) => {
  let server: TestServer;
  let users: Users;

  beforeAll(async () => {
    server = await startServer(kind);
    // gRPC multiplexes every concurrent call over one HTTP/2 connection.
    users = clientFor(UserService, "grpc", server.baseUrl, await server.token());
  });
  afterAll(() => server?.close());

  it("runs hundreds of concurrent writes without losing or interleaving any", async () => {
    const contended = (await users.createUser({ user: { email: `contended-${randomUUID()}@example.com` } })).user!;
    const before = (await allUsers(users)).length;

    const creates = Array.from({ length: 200 }, (_, i) =>
      codeOf(users.createUser({ user: { email: `bulk-${i}-${randomUUID()}@example.com`, displayName: `bulk ${i}` } })),
    );
    // Read-modify-write with the etag, retried on ABORTED, from 10 writers at once.
    const wins: { etag: string; displayName: string }[] = [];
    let aborted = 0;
    const writer = async (w: number) => {
      for (let k = 0; k < 3; ) {
        const current = (await users.getUser({ id: contended.id })).user!;
        const displayName = `writer ${w} update ${k}`;
        try {
          const updated = (
            await users.updateUser({ user: { id: contended.id, displayName, etag: current.etag }, updateMask: displayNameMask() })
          ).user!;
          wins.push({ etag: updated.etag, displayName });
          k++;
        } catch (err) {
          if (ConnectError.from(err).code !== Code.Aborted) throw err;
          aborted++;
        }
      }
    };
    const [createCodes] = await Promise.all([Promise.all(creates), Promise.all(Array.from({ length: 10 }, (_, w) => writer(w)))]);

    expect(createCodes.filter((c) => c !== "OK")).toEqual([]);
    expect((await allUsers(users)).length).toBe(before + 200);

    // Every successful update moved the version by exactly one: v2 … v31, none twice, none skipped.
    expect(wins.length).toBe(30);
    const versions = wins.map((w) => Number(/^"v(\d+)"$/.exec(w.etag)![1])).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 30 }, (_, i) => i + 2));
    // The writers really raced: some lost and were told so, instead of overwriting.
    expect(aborted).toBeGreaterThan(0);
    const final = (await users.getUser({ id: contended.id })).user!;
    expect(final.etag).toBe('"v31"');
    expect(final.displayName).toBe(wins.find((w) => w.etag === '"v31"')!.displayName);
  });

  it("rolls back a create that fails mid-transaction, idempotency key included", async () => {
    const email = `taken-${randomUUID()}@example.com`;
    const first = (await users.createUser({ user: { email } })).user!;
    const before = await allUsers(users);
    const requestId = randomUUID();
    // The idempotency key is written before the insert that then fails on the unique e-mail.
    const duplicate = { user: { email: email.toUpperCase(), displayName: "dup" }, requestId };
    expect(await codeOf(users.createUser(duplicate))).toBe("AlreadyExists");
    expect(await allUsers(users)).toEqual(before);
    // Had the key survived, this retry would replay a missing result instead of running.
    await users.deleteUser({ id: first.id });
    const retried = (await users.createUser(duplicate)).user!;
    expect(retried.email).toBe(email.toUpperCase());
    expect(retried.id).not.toBe(first.id);
  });

  it("creates exactly one user for 20 concurrent calls with the same request_id", async () => {
    const requestId = randomUUID();
    const email = `once-${randomUUID()}@example.com`;
    const results = await Promise.all(
      Array.from({ length: 20 }, () => users.createUser({ user: { email, displayName: "once" }, requestId })),
    );
    const ids = new Set(results.map((r) => r.user!.id));
    expect(ids.size).toBe(1);
    const matching = (await allUsers(users)).filter((u) => u.email === email);
    expect(matching.map((u) => u.id)).toEqual([...ids]);
    // Every replay is the first answer, etag and timestamps included.
    for (const r of results) expect(r.user).toEqual(results[0]!.user);
  });
});

describe.each(databaseKinds)("UnitOfWork on %s", (kind) => {
  let testDb: TestDatabase;
  let handle: DatabaseHandle;
  let uow: UnitOfWork;
  const scope = { tenant: "acme" };
  const newUser = (label: string): NewUser => ({
    email: `${label}-${randomUUID()}@example.com`,
    displayName: label,
    roles: [],
    state: "active",
  });
  // Read outside any unit of work, on its own connection (postgres) or after the queue (embedded).
  const emailsOf = async (tenant = "acme") =>
    (await handle.db.selectFrom("users").select("email").where("tenant_id", "=", tenant).execute()).map((r) => r.email);

  beforeAll(async () => {
    testDb = await createTestDatabase(kind);
    handle = await openDatabase(
      testDb.url
        ? { kind: "postgres", url: testDb.url, poolSize: 4, statementTimeoutMs: 10_000 }
        : { kind: "pglite", dataDir: "memory://" },
      pino({ level: "silent" }),
    );
    await migrateToLatest(handle.db);
    uow = new UnitOfWork(handle.db);
  });
  afterAll(async () => {
    await handle?.close();
    await testDb?.drop();
  });

  it("commits the work and resolves with its result", async () => {
    const input = newUser("commit");
    const created = await uow.transact(scope, (tx) => tx.users.create(input));
    expect(created.email).toBe(input.email);
    expect(await emailsOf()).toContain(input.email);
    expect(await uow.transact(scope, (tx) => tx.users.get(created.id))).toEqual(created);
  });

  it("rolls back everything when the work throws after writing", async () => {
    const a = newUser("rollback-a");
    const b = newUser("rollback-b");
    const boom = new Error("work failed after writing");
    const err = await uow
      .transact(scope, async (tx) => {
        await tx.users.create(a);
        await tx.users.create(b);
        // The writes are visible inside the transaction…
        expect((await tx.users.list(1000, undefined)).map((u) => u.email)).toEqual(expect.arrayContaining([a.email, b.email]));
        throw boom;
      })
      .catch((e: unknown) => e);
    expect(err).toBe(boom);
    // …and gone after it.
    const emails = await emailsOf();
    expect(emails).not.toContain(a.email);
    expect(emails).not.toContain(b.email);
  });

  it("scopes repositories to the tenant", async () => {
    const created = await uow.transact({ tenant: "globex" }, (tx) => tx.users.create(newUser("globex")));
    const err = await uow.transact(scope, (tx) => tx.users.get(created.id)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(await emailsOf("globex")).toContain(created.email);
  });

  it("runs onCommit hooks only after the commit, and never after a rollback", async () => {
    const input = newUser("hooked");
    const events: string[] = [];
    let seenByHook: Promise<string[]> | undefined;
    await uow.transact(scope, async (tx) => {
      tx.onCommit(() => {
        events.push("hook");
        // Outside the transaction: only a committed row is visible here.
        seenByHook = emailsOf();
      });
      await tx.users.create(input);
      events.push("work done");
    });
    events.push("resolved");
    expect(events).toEqual(["work done", "hook", "resolved"]);
    expect(await seenByHook).toContain(input.email);

    let rolledBackHookRan = false;
    await uow
      .transact(scope, async (tx) => {
        tx.onCommit(() => {
          rolledBackHookRan = true;
        });
        await tx.users.create(newUser("hook-rollback"));
        throw new Error("roll back");
      })
      .catch(() => undefined);
    // A failing statement also rolls back: the hook registered before it must not run either.
    const existing = newUser("hook-dup");
    await uow.transact(scope, (tx) => tx.users.create(existing));
    await uow
      .transact(scope, async (tx) => {
        tx.onCommit(() => {
          rolledBackHookRan = true;
        });
        await tx.users.create(existing);
      })
      .catch(() => undefined);
    expect(rolledBackHookRan).toBe(false);
  });

  it("refuses repositories used after their transaction ended", async () => {
    let leaked: Repositories | undefined;
    let leakedUsers: Repositories["users"] | undefined;
    const created = await uow.transact(scope, async (tx) => {
      leaked = tx;
      leakedUsers = tx.users;
      return tx.users.create(newUser("leak"));
    });
    expect(() => leaked!.users).toThrow(InternalError);
    expect(() => leaked!.idempotency).toThrow(InternalError);
    expect(() => leaked!.onCommit(() => undefined)).toThrow(InternalError);
    // A repository captured inside the transaction cannot run outside it either.
    await expect(leakedUsers!.get(created.id)).rejects.toThrow(/already committed/);

    let rolledBack: Repositories["users"] | undefined;
    await uow
      .transact(scope, async (tx) => {
        rolledBack = tx.users;
        throw new Error("roll back");
      })
      .catch(() => undefined);
    await expect(rolledBack!.create(newUser("after-rollback"))).rejects.toThrow(/already rolled back/);
  });

  it.skipIf(kind !== "pglite")("queues transactions on the embedded database instead of interleaving them", async () => {
    const events: string[] = [];
    let releaseFirst!: () => void;
    const firstHolds = new Promise<void>((r) => (releaseFirst = r));
    const input = newUser("queued");
    const first = uow.transact(scope, async (tx) => {
      events.push("first begins");
      await tx.users.create(input);
      await firstHolds;
      events.push("first ends");
    });
    const second = uow.transact(scope, async (tx) => {
      events.push("second begins");
      return (await tx.users.list(1000, undefined)).map((u) => u.email);
    });
    // Give the second transaction every chance to start early.
    await new Promise((r) => setTimeout(r, 200));
    expect(events).toEqual(["first begins"]);
    releaseFirst();
    const [, seen] = await Promise.all([first, second]);
    expect(events).toEqual(["first begins", "first ends", "second begins"]);
    // The second transaction began after the first committed, so it sees its row.
    expect(seen).toContain(input.email);
  });

  it.skipIf(kind !== "pglite")("counts the time spent queued against the request's deadline", async () => {
    let releaseFirst!: () => void;
    const first = uow.transact(scope, () => new Promise<void>((r) => (releaseFirst = r)));
    let lateWorkRan = false;
    // 100 ms of deadline, spent entirely waiting for the embedded database's one connection.
    const late = uow
      .transact({ ...scope, deadline: Date.now() + 100 }, async (tx) => {
        lateWorkRan = true;
        return tx.users.create(newUser("too-late"));
      })
      .catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 300));
    releaseFirst();
    await first;
    expect(await late).toBeInstanceOf(DeadlineExceededError);
    expect(lateWorkRan).toBe(false);
    expect((await emailsOf()).filter((e) => e.startsWith("too-late-"))).toEqual([]);
  });

  // Two transactions that wait for each other at a point both reached: the
  // first arrival waits for the second, so the interleaving is the one the
  // test names, not whatever the scheduler picked.
  const meetingPoint = () => {
    let arrived = 0;
    let release!: () => void;
    const all = new Promise<void>((r) => (release = r));
    return () => {
      if (++arrived === 2) release();
      return all;
    };
  };

  it.skipIf(kind !== "postgres")("answers ABORTED, retryable, for a real deadlock between two units of work (PostgreSQL only)", async () => {
    const [a, b] = await Promise.all([uow.transact(scope, (tx) => tx.users.create(newUser("lock-a"))), uow.transact(scope, (tx) => tx.users.create(newUser("lock-b")))]);
    const bothHoldOne = meetingPoint();
    // Each locks one row, then wants the other's: PostgreSQL breaks the cycle by failing one.
    const crosswise = (first: string, second: string) =>
      uow.transact(scope, async (tx) => {
        await tx.users.update(first, { displayName: "first" }, undefined);
        await bothHoldOne();
        await tx.users.update(second, { displayName: "second" }, undefined);
      });
    const outcomes = await Promise.allSettled([crosswise(a!.id, b!.id), crosswise(b!.id, a!.id)]);
    const failed = outcomes.flatMap((o) => (o.status === "rejected" ? [o.reason as unknown] : []));
    expect(failed, "exactly one side of the deadlock fails").toHaveLength(1);
    const mapped = toConnectError(failed[0], "deadlock");
    expect(Code[mapped.code]).toBe("Aborted");
    expect(mapped.rawMessage).not.toMatch(/deadlock|process|transaction \d/i);
  });

  it.skipIf(kind !== "postgres")("answers ABORTED, retryable, for a real serialization failure (PostgreSQL only)", async () => {
    // Anvil runs READ COMMITTED, where PostgreSQL does not raise 40001; an
    // operator may run SERIALIZABLE (or a Postgres-compatible cluster that
    // only offers it), and then write skew is refused with 40001.
    const serializableDb = await createTestDatabase("postgres");
    const serializable = await openDatabase({ kind: "postgres", url: serializableDb.url!, poolSize: 4, statementTimeoutMs: 10_000 }, pino({ level: "silent" }));
    try {
      await migrateToLatest(serializable.db);
      const name = new URL(serializableDb.url!).pathname.slice(1);
      await sql`alter database ${sql.id(name)} set default_transaction_isolation = 'serializable'`.execute(serializable.db);
      // The pool's open connections keep the old default: start from fresh ones.
      await serializable.close();
      const fresh = await openDatabase({ kind: "postgres", url: serializableDb.url!, poolSize: 4, statementTimeoutMs: 10_000 }, pino({ level: "silent" }));
      try {
        const skewed = new UnitOfWork(fresh.db);
        const [a, b] = await Promise.all([skewed.transact(scope, (tx) => tx.users.create(newUser("skew-a"))), skewed.transact(scope, (tx) => tx.users.create(newUser("skew-b")))]);
        const bothRead = meetingPoint();
        // Each reads the row the other writes: no serial order explains both.
        const skew = (read: string, write: string) =>
          skewed.transact(scope, async (tx) => {
            await tx.users.get(read);
            await bothRead();
            await tx.users.update(write, { displayName: "skewed" }, undefined);
          });
        const outcomes = await Promise.allSettled([skew(a!.id, b!.id), skew(b!.id, a!.id)]);
        const failed = outcomes.flatMap((o) => (o.status === "rejected" ? [o.reason as unknown] : []));
        expect(failed, "one of the two skewed writers fails").toHaveLength(1);
        const mapped = toConnectError(failed[0], "skew");
        expect(Code[mapped.code]).toBe("Aborted");
        expect(mapped.rawMessage).not.toMatch(/serializ|pivot|rw-conflict/i);
      } finally {
        await fresh.close();
      }
    } finally {
      await serializableDb.drop();
    }
  });

  it("clamps a deadline beyond what statement_timeout accepts (about 24.8 days) instead of failing", async () => {
    const input = newUser("far-deadline");
    const created = await uow.transact({ ...scope, deadline: Date.now() + 30 * 24 * 3600_000 }, (tx) => tx.users.create(input));
    expect(created.email).toBe(input.email);
  });
});
