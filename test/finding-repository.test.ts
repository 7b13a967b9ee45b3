// The findings' SQL (src/findings/finding.repository.ts) straight over a real
// database: what the upsert keeps and moves, how the aggregates behind the
// summary, the trends, the top files and alert correlation count, order and
// limit, each with another tenant's findings beside the caller's. The
// end-to-end suites reach these statements through FindingService, one
// gateway start per suite.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import pg from "pg";
import { describe, expect, it } from "vitest";
import type { FindingFilter } from "../src/findings/finding-query.js";
import { FindingRepository, type FingerprintedFinding } from "../src/findings/finding.repository.js";
import { AbortedError, NotFoundError } from "../src/shared/errors.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";

/** A finding to upsert, with a fingerprint of its own unless given. */
const finding = (over: Partial<FingerprintedFinding> = {}): FingerprintedFinding => ({
  filePath: "src/a.ts",
  line: 1,
  endLine: 1,
  severity: "low",
  issueType: "bug",
  ruleId: "r1",
  message: "m",
  suggestion: "",
  status: "open",
  source: "test",
  fingerprint: `fp-${randomUUID()}`,
  ...over,
});

describe.each(databaseKinds)("finding statements on %s", (kind) => {
  const suite = migratedDatabase(kind, 30_000);

  const findings = <T>(tenant: string, work: (f: FindingRepository) => Promise<T>): Promise<T> =>
    suite.db.transaction().execute((trx) => work(new FindingRepository(trx, tenant)));
  const upsert = (tenant: string, batch: FingerprintedFinding[]) => findings(tenant, (f) => f.upsert(batch));
  /** Each tenant its own: the aggregates count everything a tenant has. */
  const newTenant = () => `tenant-${randomUUID().slice(0, 8)}`;
  /** Stores `batch` in `tenant` and the same findings in another tenant, which no read of `tenant` may count. */
  const seed = async (tenant: string, batch: FingerprintedFinding[]) => {
    await upsert(`${tenant}-other`, batch.map((f) => ({ ...f })));
    return upsert(tenant, batch);
  };

  it("upserts: new findings stored, a known fingerprint only moves its last-seen time and version, in the caller's tenant only", async () => {
    const [acme, globex] = [newTenant(), newTenant()];
    const resolved = finding({ status: "resolved" });
    const open = finding();
    const stored = await upsert(acme, [resolved, open]);
    expect([...stored.keys()].sort()).toEqual([resolved.fingerprint, open.fingerprint].sort());
    expect(stored.get(resolved.fingerprint)!.resolveTime).toBeInstanceOf(Date);
    expect(stored.get(open.fingerprint)).toMatchObject({ status: "open", resolveTime: undefined, version: 1, message: "m", filePath: "src/a.ts" });

    const theirs = await upsert(globex, [{ ...open, message: "theirs" }]);
    expect(theirs.get(open.fingerprint)).toMatchObject({ message: "theirs", version: 1 });
    expect(theirs.get(open.fingerprint)!.id).not.toBe(stored.get(open.fingerprint)!.id);

    await sql`update findings set last_seen_time = now() - interval '1 day' where tenant_id = ${acme}`.execute(suite.db);
    const before = await findings(acme, (f) => f.get(stored.get(open.fingerprint)!.id));
    const again = (await upsert(acme, [{ ...open, message: "changed", status: "resolved", severity: "critical" }])).get(open.fingerprint)!;
    expect(again).toMatchObject({ id: before.id, message: "m", status: "open", severity: "low", version: 2, resolveTime: undefined });
    expect(again.firstSeenTime).toEqual(before.firstSeenTime);
    expect(again.lastSeenTime.getTime()).toBeGreaterThan(before.lastSeenTime.getTime());
    expect((await findings(globex, (f) => f.get(theirs.get(open.fingerprint)!.id))).version).toBe(1);
    expect((await upsert(acme, [])).size).toBe(0);
  });

  it("upserts more findings than one statement can bind, in several statements", async () => {
    const tenant = newTenant();
    // 14 columns a row: 5,000 rows need 70,000 parameters, past PostgreSQL's 65,535.
    const batch = Array.from({ length: 5_000 }, (_, i) => finding({ line: i + 1, endLine: i + 1 }));
    expect((await upsert(tenant, batch)).size).toBe(5_000);
    const { n } = await suite.db.selectFrom("findings").select((eb) => eb.fn.countAll<string>().as("n")).where("tenant_id", "=", tenant).executeTakeFirstOrThrow();
    expect(Number(n)).toBe(5_000);
    // Exactly one statement's worth (65,535 parameters / 14 columns): one statement, none after it.
    expect((await upsert(newTenant(), Array.from({ length: 4_681 }, () => finding()))).size).toBe(4_681);
  });

  it("updates the given fields at the expected version only, in the caller's tenant only", async () => {
    const tenant = newTenant();
    const stored = (await upsert(tenant, [finding()])).values().next().value!;
    const resolveTime = new Date("2026-11-01T00:00:00Z");
    const updated = await findings(tenant, (f) => f.update(stored.id, { status: "resolved", resolveTime, severity: "high", issueType: "smell", suggestion: "fix it" }, 1));
    expect(updated).toMatchObject({ status: "resolved", resolveTime, severity: "high", issueType: "smell", suggestion: "fix it", version: 2 });
    // A change that leaves the status alone keeps the resolve time.
    const regraded = await findings(tenant, (f) => f.update(stored.id, { severity: "critical" }, undefined));
    expect(regraded).toMatchObject({ status: "resolved", resolveTime, severity: "critical", version: 3 });
    const reopened = await findings(tenant, (f) => f.update(stored.id, { status: "open" }, undefined));
    expect(reopened).toMatchObject({ status: "open", resolveTime: undefined, severity: "critical", issueType: "smell", version: 4 });
    expect(await findings(tenant, (f) => f.update(stored.id, { severity: "low" }, 1)).catch((e: unknown) => e)).toBeInstanceOf(AbortedError);
    const elsewhere = await findings(`${tenant}-other`, (f) => f.update(stored.id, { severity: "low" }, undefined)).catch((e: unknown) => e);
    expect(elsewhere).toBeInstanceOf(NotFoundError);
    expect(elsewhere).toMatchObject({ resource: "finding", id: stored.id });
    await findings(tenant, (f) => f.delete(stored.id, 4));
    expect(await findings(tenant, (f) => f.get(stored.id)).catch((e: unknown) => e)).toBeInstanceOf(NotFoundError);
  });

  it("counts the tenant's findings per severity and status, under a path prefix taken literally", async () => {
    const tenant = newTenant();
    await seed(tenant, [
      finding({ severity: "high", filePath: "src/a.ts" }),
      finding({ severity: "high", filePath: "src/b.ts" }),
      finding({ severity: "high", status: "resolved", filePath: "src/b.ts" }),
      finding({ severity: "low", filePath: "lib/x.ts" }),
    ]);
    const counts = async (prefix?: string) =>
      (await findings(tenant, (f) => f.counts(prefix))).map((c) => `${c.severity} ${c.status} ${c.count}`).sort();
    expect(await counts()).toEqual(["high open 2", "high resolved 1", "low open 1"]);
    expect(await counts("src/")).toEqual(["high open 2", "high resolved 1"]);
    expect(await counts("sr_")).toEqual([]);
    expect(await counts("")).toEqual(await counts());
  });

  it("counts findings per UTC day of first-seen or resolve time, from a date on, under a path prefix", async () => {
    const tenant = newTenant();
    const batch = [finding({ filePath: "src/a.ts" }), finding({ filePath: "src/b.ts" }), finding({ filePath: "lib/c.ts" })];
    await seed(tenant, batch);
    const days = ["2026-11-01T23:30:00Z", "2026-11-02T00:30:00Z", "2026-11-02T12:00:00Z"];
    for (const [i, f] of batch.entries()) {
      await sql`update findings set first_seen_time = ${days[i]}::timestamptz, resolve_time = ${days[i]}::timestamptz + interval '1 day'
        where tenant_id like ${`${tenant}%`} and fingerprint = ${f.fingerprint}`.execute(suite.db);
    }
    const perDay = async (column: "first_seen_time" | "resolve_time", since: string, prefix?: string) =>
      Object.fromEntries(await findings(tenant, (f) => f.perDay(column, new Date(since), prefix)));
    expect(await perDay("first_seen_time", "2026-10-01T00:00:00Z")).toEqual({ "2026-11-01": 1, "2026-11-02": 2 });
    expect(await perDay("first_seen_time", "2026-11-02T00:30:00Z")).toEqual({ "2026-11-02": 2 });
    expect(await perDay("first_seen_time", "2026-10-01T00:00:00Z", "src/")).toEqual({ "2026-11-01": 1, "2026-11-02": 1 });
    expect(await perDay("resolve_time", "2026-10-01T00:00:00Z")).toEqual({ "2026-11-02": 1, "2026-11-03": 2 });
  });

  it("ranks the files with the most unresolved findings, open and acknowledged alike, most first, ties by path, up to the limit", async () => {
    const tenant = newTenant();
    await seed(tenant, [
      finding({ filePath: "src/b.ts" }),
      finding({ filePath: "src/b.ts", status: "acknowledged" }),
      finding({ filePath: "src/a.ts" }),
      finding({ filePath: "src/a.ts" }),
      finding({ filePath: "src/c.ts" }),
      ...Array.from({ length: 3 }, () => finding({ filePath: "src/c.ts", status: "resolved" })),
      ...Array.from({ length: 3 }, () => finding({ filePath: "src/d.ts", status: "false_positive" })),
      finding({ filePath: "lib/e.ts" }),
    ]);
    const top = async (prefix: string | undefined, limit: number) =>
      (await findings(tenant, (f) => f.topFiles(prefix, limit))).map((r) => `${r.filePath} ${r.count}`);
    expect(await top(undefined, 10)).toEqual(["src/a.ts 2", "src/b.ts 2", "lib/e.ts 1", "src/c.ts 1"]);
    expect(await top(undefined, 2)).toEqual(["src/a.ts 2", "src/b.ts 2"]);
    expect(await top("src/", 10)).toEqual(["src/a.ts 2", "src/b.ts 2", "src/c.ts 1"]);
  });

  it("reads the unresolved findings in the given files, by path, line and id, up to the limit", async () => {
    const tenant = newTenant();
    await seed(tenant, [
      finding({ filePath: "src/b.ts", line: 1 }),
      finding({ filePath: "src/a.ts", line: 9, endLine: 9, status: "acknowledged" }),
      finding({ filePath: "src/a.ts", line: 3, endLine: 3 }),
      finding({ filePath: "src/a.ts", line: 5, endLine: 5, status: "resolved" }),
      finding({ filePath: "src/a.ts", line: 6, endLine: 6, status: "false_positive" }),
      finding({ filePath: "src/c.ts", line: 1 }),
    ]);
    const unresolved = async (files: string[], limit = 10) =>
      (await findings(tenant, (f) => f.unresolvedIn(files, limit))).map((f) => `${f.filePath}:${f.line}`);
    expect(await unresolved(["src/a.ts", "src/b.ts"])).toEqual(["src/a.ts:3", "src/a.ts:9", "src/b.ts:1"]);
    expect(await unresolved(["src/a.ts", "src/b.ts"], 2)).toEqual(["src/a.ts:3", "src/a.ts:9"]);
    expect(await unresolved([])).toEqual([]);
  });

  it("lists the tenant's findings narrowed by each filter", async () => {
    const tenant = newTenant();
    await seed(tenant, [
      finding({ filePath: "src/a.ts", severity: "critical", issueType: "vuln", ruleId: "a" }),
      finding({ filePath: "src/b.ts", severity: "medium", status: "acknowledged", ruleId: "b" }),
      finding({ filePath: "lib/c.ts", severity: "info", status: "resolved", ruleId: "c" }),
    ]);
    await sql`update findings set last_seen_time = '2026-11-10T00:00:00Z' where tenant_id like ${`${tenant}%`} and rule_id = 'a'`.execute(suite.db);
    const list = async (filter: FindingFilter) =>
      (await findings(tenant, (f) => f.list(filter, { field: "file_path", direction: "asc" }, 10, undefined))).map((f) => f.ruleId);
    expect(await list({})).toEqual(["c", "a", "b"]);
    expect(await list({ statuses: [] })).toEqual(["c", "a", "b"]);
    expect(await list({ filePath: "src/b.ts" })).toEqual(["b"]);
    expect(await list({ filePathPrefix: "src/" })).toEqual(["a", "b"]);
    expect(await list({ minSeverity: "medium" })).toEqual(["a", "b"]);
    expect(await list({ statuses: ["acknowledged", "resolved"] })).toEqual(["c", "b"]);
    expect(await list({ issueType: "vuln" })).toEqual(["a"]);
    expect(await list({ until: new Date("2026-11-11T00:00:00Z") })).toEqual(["a"]);
    expect(await list({ since: new Date("2026-11-11T00:00:00Z") })).toEqual(["c", "b"]);
  });

  it.runIf(kind === "postgres")("upserts a batch in fingerprint order whatever its order: batches sharing findings lock their rows in one order, so they wait for each other instead of deadlocking (PostgreSQL only: row locks)", async () => {
    const tenant = newTenant();
    const [first, second] = [finding({ fingerprint: `a-${randomUUID()}` }), finding({ fingerprint: `b-${randomUUID()}` })];
    await upsert(tenant, [first, second]);
    const holder = new pg.Client({ connectionString: suite.url });
    const prober = new pg.Client({ connectionString: suite.url });
    await Promise.all([holder.connect(), prober.connect()]);
    try {
      for (const batch of [[second, first], [first, second]]) {
        // Another batch holds the later row: this one must have taken the earlier row by the time it waits.
        await holder.query("begin");
        await holder.query("select 1 from findings where tenant_id = $1 and fingerprint = $2 for update", [tenant, second.fingerprint]);
        let pid: number | undefined;
        const upserting = suite.db.transaction().execute(async (trx) => {
          pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]!.pid;
          return new FindingRepository(trx, tenant).upsert(batch);
        });
        for (let waited = 0; ; waited += 20) {
          const { rows } = await prober.query("select 1 from pg_stat_activity where pid = $1 and wait_event_type = 'Lock'", [pid ?? 0]);
          if (rows.length === 1) break;
          if (waited > 10_000) throw new Error("the upsert never waited for the held row");
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        const { rows: free } = await prober.query("select 1 from findings where tenant_id = $1 and fingerprint = $2 for update skip locked", [tenant, first.fingerprint]);
        expect(free).toEqual([]);
        await holder.query("rollback");
        expect([...(await upserting).keys()].sort()).toEqual([first.fingerprint, second.fingerprint]);
      }
    } finally {
      await Promise.all([holder.end(), prober.end()]);
    }
  });
});
