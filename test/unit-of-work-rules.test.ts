// The UnitOfWork's own rules straight over a real database (test/
// unit-of-work.test.ts builds its unit of work without a failures counter, an
// audit or a statement observer): what it counts as a failure a client may
// retry, the statement timeout a deadline sets, the audit event of a
// transaction that wrote, and what a read may not do.
import { randomUUID } from "node:crypto";
import net from "node:net";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { ChangeAudit, NewAuditEvent } from "../src/audit/audit-event.js";
import { openDatabase } from "../src/db/database.js";
import { migrateToLatest } from "../src/db/migrator.js";
import { UnitOfWork } from "../src/db/unit-of-work.js";
import { AbortedError, AlreadyExistsError, DeadlineExceededError, InvalidArgumentError, UnavailableError } from "../src/shared/errors.js";
import type { NewUser } from "../src/users/user.js";
import { createTestDatabase, databaseKinds } from "./support/databases.js";

const newUser = (label: string): NewUser => ({ email: `${label}-${randomUUID()}@example.com`, displayName: label, roles: [], state: "active" });
const silent = pino({ level: "silent" });

/** A failures counter that keeps what it was told. */
function counting() {
  const told: string[] = [];
  return { told, failures: { conflict: () => void told.push("conflict"), unavailable: () => void told.push("unavailable") } };
}

/** An audit that keeps the ids each event was asked for. */
function recordingAudit() {
  const asked: string[][] = [];
  const audit: ChangeAudit = {
    eventFor: (ids, time): NewAuditEvent => {
      asked.push([...ids]);
      return {
        time,
        tenant: "acme",
        kind: "mutation",
        credentialKind: "api_key",
        credentialId: "k",
        subject: "tester",
        method: "anvil.users.v1.UserService/CreateUser",
        protocol: "connect",
        requestId: randomUUID(),
        traceId: "",
        resourceIds: [...ids],
        outcome: 0,
        clientAddress: "127.0.0.1",
        userAgent: "test",
        parameters: {},
        droppedCount: 0,
      };
    },
  };
  return { asked, audit };
}

/** Two transactions meet here: the first to arrive waits for the second. */
const meetingPoint = () => {
  let arrived = 0;
  let release!: () => void;
  const all = new Promise<void>((r) => (release = r));
  return () => {
    if (++arrived === 2) release();
    return all;
  };
};

describe.each(databaseKinds)("UnitOfWork's rules on %s", (kind) => {
  /** A migrated database of its own with every statement's name recorded, and a unit of work over it. */
  async function withUnitOfWork(work: (ctx: { uow: UnitOfWork; statements: string[]; told: string[]; handle: Awaited<ReturnType<typeof openDatabase>> }) => Promise<void>) {
    const database = await createTestDatabase(kind);
    const statements: string[] = [];
    const handle = await openDatabase(
      database.url ? { kind: "postgres", url: database.url, poolSize: 4, statementTimeoutMs: 10_000 } : { kind: "pglite", dataDir: "memory://", seed: process.env.ANVIL_PGLITE_SEED },
      silent,
      (name) => statements.push(name),
    );
    try {
      await migrateToLatest(handle.db);
      const { told, failures } = counting();
      statements.length = 0;
      await work({ uow: new UnitOfWork(handle.db, failures, handle), statements, told, handle });
    } finally {
      await handle.close();
      await database.drop();
    }
  }

  it("sets a transaction's statement timeout from its deadline, refuses one already past, and a read with a deadline takes a transaction", async () => {
    await withUnitOfWork(async ({ uow, statements }) => {
      await uow.transact({ tenant: "acme" }, (tx) => tx.users.create(newUser("no-deadline")));
      expect(statements).not.toContain("transaction.statementTimeout");
      statements.length = 0;
      await uow.transact({ tenant: "acme", deadline: Date.now() + 60_000 }, (tx) => tx.users.create(newUser("deadline")));
      expect(statements.slice(0, 2)).toEqual(["begin", "transaction.statementTimeout"]);
      statements.length = 0;
      for (const deadline of [Date.now() - 1, Date.now()]) {
        await expect(uow.transact({ tenant: "acme", deadline }, async () => "ran")).rejects.toBeInstanceOf(DeadlineExceededError);
        await expect(uow.read({ tenant: "acme", deadline }, async () => "ran")).rejects.toBeInstanceOf(DeadlineExceededError);
      }
      expect(statements).toEqual([]);
      await uow.read({ tenant: "acme" }, (tx) => tx.users.list(1, undefined));
      expect(statements).toEqual(["select users"]);
      statements.length = 0;
      await uow.read({ tenant: "acme", deadline: Date.now() + 60_000 }, (tx) => tx.users.list(1, undefined));
      expect(statements).toEqual(["begin", "transaction.statementTimeout", "select users", "commit"]);
    });
  });

  it("writes the audit event of a transaction that wrote, with the ids it touched; one that only read records none", async () => {
    await withUnitOfWork(async ({ uow, handle }) => {
      const { asked, audit } = recordingAudit();
      const created = await uow.transact({ tenant: "acme", audit }, (tx) => tx.users.create(newUser("audited")));
      expect(asked).toEqual([[created.id]]);
      await uow.transact({ tenant: "acme", audit }, (tx) => tx.users.get(created.id));
      expect(asked).toHaveLength(2);
      const events = await handle.db.selectFrom("audit_events").select(["resource_ids", "tenant_id"]).execute();
      expect(events).toEqual([{ resource_ids: [created.id], tenant_id: "acme" }]);
      // Without an audit, nothing is recorded.
      await uow.transact({ tenant: "acme" }, (tx) => tx.users.create(newUser("unaudited")));
      expect(await handle.db.selectFrom("audit_events").select("id").execute()).toHaveLength(1);
    });
  });

  it("refuses commit hooks in a read, and passes a read's domain errors through uncounted", async () => {
    await withUnitOfWork(async ({ uow, told }) => {
      await expect(uow.read({ tenant: "acme" }, async (tx) => tx.onCommit(() => undefined))).rejects.toThrow("onCommit is not available in a read");
      const email = `dup-${randomUUID()}@example.com`;
      await uow.transact({ tenant: "acme" }, (tx) => tx.users.create({ ...newUser("x"), email }));
      await expect(uow.transact({ tenant: "acme" }, (tx) => tx.users.create({ ...newUser("y"), email }))).rejects.toBeInstanceOf(AlreadyExistsError);
      await expect(uow.read({ tenant: "acme" }, async () => Promise.reject(InvalidArgumentError.field("x", "bad")))).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(told).toEqual([]);
    });
  });

  it.skipIf(kind !== "postgres")("counts a lost race (a real deadlock) as a conflict, once (PostgreSQL only)", async () => {
    await withUnitOfWork(async ({ uow, told }) => {
      const scope = { tenant: "acme" };
      const [a, b] = [await uow.transact(scope, (tx) => tx.users.create(newUser("a"))), await uow.transact(scope, (tx) => tx.users.create(newUser("b")))];
      const bothHoldOne = meetingPoint();
      const crosswise = (first: string, second: string) =>
        uow.transact(scope, async (tx) => {
          await tx.users.update(first, { displayName: "first" }, undefined);
          await bothHoldOne();
          await tx.users.update(second, { displayName: "second" }, undefined);
        });
      const outcomes = await Promise.allSettled([crosswise(a.id, b.id), crosswise(b.id, a.id)]);
      const failed = outcomes.flatMap((o) => (o.status === "rejected" ? [o.reason as unknown] : []));
      expect(failed).toHaveLength(1);
      expect((failed[0] as AbortedError).reason).toBe("TRANSACTION_CONFLICT");
      expect(told).toEqual(["conflict"]);
      // An etag that no longer matches is ABORTED too, but no lost race of the database's.
      await expect(uow.transact(scope, (tx) => tx.users.update(a.id, { displayName: "stale" }, 1))).rejects.toBeInstanceOf(AbortedError);
      expect(told).toEqual(["conflict"]);
    });
  });

  it.skipIf(kind !== "postgres")("counts a database it cannot reach as unavailable, in a transaction and in a read (PostgreSQL only)", async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const handle = await openDatabase({ kind: "postgres", url: `postgres://postgres@127.0.0.1:${port}/postgres`, poolSize: 1, statementTimeoutMs: 1_000 }, silent);
    try {
      const { told, failures } = counting();
      const uow = new UnitOfWork(handle.db, failures);
      await expect(uow.transact({ tenant: "acme" }, (tx) => tx.users.list(1, undefined))).rejects.toBeInstanceOf(UnavailableError);
      await expect(uow.read({ tenant: "acme" }, (tx) => tx.users.list(1, undefined))).rejects.toBeInstanceOf(UnavailableError);
      expect(told).toEqual(["unavailable", "unavailable"]);
      // Without a counter, the same failures are only answered.
      await expect(new UnitOfWork(handle.db).read({ tenant: "acme" }, (tx) => tx.users.list(1, undefined))).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      await handle.close();
    }
  });
});
