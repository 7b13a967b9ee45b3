// The audit log's SQL (src/audit/audit.repository.ts, audit-store.repository.ts)
// straight over a real database: when a change's event is written, what each
// filter of ListAuditEvents and each bound of an export keeps, in which order
// and how many, and what retention deletes, with other tenants' events beside
// the caller's. The end-to-end audit suite reaches these statements through
// a gateway, where most of a filter's edge does not show.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import type { NewAuditEvent } from "../src/audit/audit-event.js";
import { AuditRepository } from "../src/audit/audit.repository.js";
import { AuditStore } from "../src/audit/audit-store.repository.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";

/** An event at minute `minute` of 2026-11-01, with what `over` changes. */
const event = (minute: number, over: Partial<NewAuditEvent> = {}): NewAuditEvent => ({
  time: new Date(Date.UTC(2026, 10, 1, 0, minute)),
  tenant: "",
  kind: "mutation",
  credentialKind: "api_key",
  credentialId: "k1",
  subject: "alice",
  method: "anvil.users.v1.UserService/CreateUser",
  protocol: "connect",
  requestId: "",
  traceId: "",
  resourceIds: [],
  outcome: 0,
  clientAddress: "127.0.0.1",
  userAgent: "test",
  parameters: { a: 1 },
  droppedCount: 0,
  ...over,
});

describe.each(databaseKinds)("audit statements on %s", (kind) => {
  const suite = migratedDatabase(kind);

  const newTenant = () => `tenant-${randomUUID().slice(0, 8)}`;
  const audit = <T>(tenant: string, work: (a: AuditRepository) => Promise<T>) => suite.db.transaction().execute((trx) => work(new AuditRepository(trx, tenant)));
  /** Stores `events` in `tenant` and the same events in another tenant, which no read of `tenant` may return. */
  const seed = (tenant: string, events: NewAuditEvent[]) =>
    new AuditStore(suite.db).insertMany(events.flatMap((e) => [{ tenant, event: e }, { tenant: `${tenant}-other`, event: e }]));

  it("writes a change's event only in a transaction that wrote something", async () => {
    const tenant = newTenant();
    const readOnly = await audit(tenant, (a) => a.insertIfChanged(event(1)));
    expect(readOnly).toBe(false);
    const written = await suite.db.transaction().execute(async (trx) => {
      await sql`select pg_current_xact_id()`.execute(trx); // what a first write does
      return new AuditRepository(trx, tenant).insertIfChanged(event(2, { subject: "bob" }));
    });
    expect(written).toBe(true);
    const listed = await audit(tenant, (a) => a.list({}, 10, undefined));
    expect(listed.map((e) => [e.subject, e.tenant, e.time.toISOString()])).toEqual([["bob", tenant, "2026-11-01T00:02:00.000Z"]]);
    expect(listed[0]).toMatchObject({ kind: "mutation", credentialKind: "api_key", credentialId: "k1", outcome: 0, parameters: { a: 1 }, droppedCount: 0 });
  });

  it("stores NUL and unpaired surrogates, which PostgreSQL refuses, as U+FFFD, in text and in parameters", async () => {
    const tenant = newTenant();
    await seed(tenant, [event(1, { subject: "a\u0000b", requestId: "\uD800r", userAgent: "u\u0000", resourceIds: ["x\u0000"], parameters: { "k\u0000": ["v\uDC00", { n: "\u0000" }, 3, null] } })]);
    const [stored] = await audit(tenant, (a) => a.list({}, 10, undefined));
    expect(stored).toMatchObject({
      subject: "a\uFFFDb",
      requestId: "\uFFFDr",
      userAgent: "u\uFFFD",
      resourceIds: ["x\uFFFD"],
      parameters: { "k\uFFFD": ["v\uFFFD", { n: "\uFFFD" }, 3, null] },
    });
  });

  it("lists the tenant's events newest first, narrowed by each filter, after a keyset position, up to the limit", async () => {
    const tenant = newTenant();
    await seed(tenant, [
      event(1, { subject: "alice", resourceIds: ["users/1"] }),
      event(2, { subject: "bob", credentialId: "k2", outcome: 7 }),
      event(3, { subject: "bob", credentialKind: "user", credentialId: "k1", method: "anvil.users.v1.UserService/DeleteUser", resourceIds: ["users/1", "users/2"] }),
    ]);
    const list = async (filter: Parameters<AuditRepository["list"]>[0], limit = 10, after?: readonly unknown[]) =>
      (await audit(tenant, (a) => a.list(filter, limit, after))).map((e) => e.time.getUTCMinutes());
    expect(await list({})).toEqual([3, 2, 1]);
    expect(await list({}, 2)).toEqual([3, 2]);
    expect(await list({ startTime: event(2).time })).toEqual([3, 2]);
    expect(await list({ endTime: event(2).time })).toEqual([1]);
    expect(await list({ credential: { kind: "api_key", id: "k1" } })).toEqual([1]);
    expect(await list({ credential: { kind: "user", id: "k1" } })).toEqual([3]);
    expect(await list({ subject: "bob" })).toEqual([3, 2]);
    expect(await list({ subject: "" })).toEqual([]);
    expect(await list({ method: "anvil.users.v1.UserService/DeleteUser" })).toEqual([3]);
    expect(await list({ outcome: 7 })).toEqual([2]);
    expect(await list({ outcome: 0 })).toEqual([3, 1]);
    expect(await list({ resourceId: "users/1" })).toEqual([3, 1]);
    const [newest] = await audit(tenant, (a) => a.list({}, 1, undefined));
    expect(await list({}, 10, [newest!.time, newest!.id])).toEqual([2, 1]);
  });

  it("reads an export's range oldest first, within its bounds, after a keyset position, up to the limit", async () => {
    const tenant = newTenant();
    await seed(tenant, [event(1), event(2), event(3), event(4)]);
    const range = async (bounds: Parameters<AuditRepository["range"]>[0], limit = 10, after?: readonly unknown[]) =>
      (await audit(tenant, (a) => a.range(bounds, limit, after))).map((e) => e.time.getUTCMinutes());
    expect(await range({})).toEqual([1, 2, 3, 4]);
    expect(await range({}, 2)).toEqual([1, 2]);
    expect(await range({ startTime: event(2).time, endTime: event(4).time })).toEqual([2, 3]);
    const [oldest] = await audit(tenant, (a) => a.range({}, 1, undefined));
    expect(await range({}, 10, [oldest!.time, oldest!.id])).toEqual([2, 3, 4]);
  });

  it("retention deletes events older than the cutoff, oldest first, in every tenant, at most a batch at a time", async () => {
    const [acme, globex] = [newTenant(), newTenant()];
    // Long before every other test's events, which the cutoff must leave alone.
    const old = (minute: number) => ({ ...event(0), time: new Date(Date.UTC(2000, 0, 1, 0, minute)) });
    const store = new AuditStore(suite.db);
    await store.insertMany([]);
    await store.insertMany([
      { tenant: acme, event: old(1) },
      { tenant: globex, event: old(2) },
      { tenant: acme, event: old(3) },
      { tenant: acme, event: old(10) },
    ]);
    const cutoff = new Date(Date.UTC(2000, 0, 1, 0, 5));
    expect(await store.deleteOlderThan(cutoff, 2)).toBe(2);
    const left = async (tenant: string) => (await audit(tenant, (a) => a.range({}, 10, undefined))).map((e) => e.time.getUTCMinutes());
    expect(await left(acme)).toEqual([3, 10]);
    expect(await left(globex)).toEqual([]);
    expect(await store.deleteOlderThan(cutoff, 2)).toBe(1);
    expect(await store.deleteOlderThan(cutoff, 2)).toBe(0);
    expect(await left(acme)).toEqual([10]);
  });
});
