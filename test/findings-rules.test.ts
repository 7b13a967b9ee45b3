import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FieldMaskSchema, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, type Client } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Finding,
  FindingSchema,
  FindingService,
  Finding_Severity as Severity,
  Finding_Status as Status,
} from "../gen/anvil/findings/v1/findings_pb.js";
import { PreconditionFailureSchema } from "../gen/google/rpc/error_details_pb.js";
import { correlate } from "../src/findings/correlation.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import { startServer, type TestServer } from "./support/server.js";

type FindingInit = MessageInitShape<typeof FindingSchema>;
type FindingClient = Client<typeof FindingService>;

const ms = (f: Finding, field: "lastSeenTime" | "firstSeenTime") => timestampDate(f[field]!).getTime();

/** Every item of every page of a listing, with a hook between pages. */
async function listAll(
  client: FindingClient,
  request: { orderBy?: string; filePathPrefix?: string; pageSize?: number },
  betweenPages?: (page: number) => Promise<void>,
): Promise<Finding[]> {
  const out: Finding[] = [];
  let pageToken = "";
  let pages = 0;
  do {
    const res = await client.listFindings({ pageSize: request.pageSize ?? 1000, ...request, pageToken });
    out.push(...res.findings);
    pageToken = res.nextPageToken;
    pages++;
    if (betweenPages && pageToken !== "") await betweenPages(pages);
  } while (pageToken !== "" && pages < 500);
  return out;
}

describe.each(databaseKinds)("FindingService rules on %s", (kind) => {
  let server: TestServer;
  const tokens: Record<string, string> = {};
  beforeAll(async () => {
    server = await startServer(kind);
    for (const key of ["acme-editor", "acme-analyzer", "acme-viewer"]) tokens[key] = await server.token(key);
  });
  afterAll(() => server?.close());

  const client = (key = "acme-editor"): FindingClient => clientFor(FindingService, "connect-json", server.baseUrl, tokens[key]);
  /** A directory of its own, so each test's findings can be told apart by prefix. */
  const dir = () => `t${randomUUID().slice(0, 8)}/`;
  const finding = (over: FindingInit = {}): FindingInit => ({
    filePath: "src/a.ts",
    line: 1,
    severity: Severity.MEDIUM,
    issueType: "code-smell",
    // A rule of its own, so that findings only share a fingerprint where a test means them to.
    ruleId: `rule/${randomUUID()}`,
    message: "something is off",
    source: "lint",
    ...over,
  });
  const batch = (items: FindingInit[], key?: string) =>
    client(key).batchCreateFindings({ requests: items.map((f) => ({ finding: f })) });

  describe("BatchCreateFindings", () => {
    it("dedupes by derived and given fingerprint, and a re-report only moves last_seen_time", async () => {
      const d = dir();
      const first = await batch([
        finding({ filePath: `${d}a.ts`, line: 3, message: "Variable 'x' unused at 12" , ruleId: "rule/a" }),
        // Same source, rule, file; the message differs only in case, literals, digits and spacing.
        finding({ filePath: `${d}a.ts`, line: 9, message: "variable   \"count\"  UNUSED at 40" , ruleId: "rule/a" }),
        finding({ filePath: `${d}a.ts`, line: 9, message: "variable 'x' is unused" , ruleId: "rule/a" }),
        finding({ filePath: `${d}b.ts`, fingerprint: "given-1", message: "one" }),
        finding({ filePath: `${d}c.ts`, fingerprint: "given-1", message: "two" }),
      ]);
      const ids = first.findings.map((f) => f.id);
      expect(ids[0]).toBe(ids[1]);
      expect(ids[3]).toBe(ids[4]);
      expect(new Set(ids).size).toBe(3);
      expect(first.findings[3]!.fingerprint).toBe("given-1");
      expect(first.findings[0]!.fingerprint).toMatch(/^[0-9a-f]{64}$/);

      await new Promise((r) => setTimeout(r, 20));
      const again = await batch([finding({ filePath: `${d}a.ts`, line: 77, message: "VARIABLE 'y' unused at 99" , ruleId: "rule/a" })]);
      const before = first.findings[0]!;
      const seen = again.findings[0]!;
      expect(seen.id).toBe(before.id);
      expect(seen.line).toBe(3);
      expect(ms(seen, "firstSeenTime")).toBe(ms(before, "firstSeenTime"));
      expect(ms(seen, "lastSeenTime")).toBeGreaterThan(ms(before, "lastSeenTime"));
      expect(seen.etag).not.toBe(before.etag);
      expect(await listAll(client(), { filePathPrefix: d })).toHaveLength(3);
    });

    it("writes nothing when one finding is invalid, and names its index", async () => {
      const d = dir();
      const existing = (await batch([finding({ filePath: `${d}kept.ts`, message: "kept" })])).findings[0]!;
      const items = Array.from({ length: 20 }, (_, i) => finding({ filePath: `${d}f${i}.ts`, line: i + 1 }));
      items.push(finding({ filePath: `${d}kept.ts`, message: "kept", ruleId: existing.ruleId }));

      items[17] = finding({ filePath: `${d}bad.ts`, line: -1 });
      const byRule = await expectCode(batch(items), Code.InvalidArgument);
      expect(byRule.message).toContain("requests[17].finding.line");

      // A rule spanning fields, checked by the service rather than the proto rules.
      items[17] = finding({ filePath: `${d}bad.ts`, line: 10, endLine: 4 });
      const byDomain = await expectCode(batch(items), Code.InvalidArgument);
      expect(byDomain.message).toContain("requests[17].finding.end_line");

      const after = await listAll(client(), { filePathPrefix: d });
      expect(after.map((f) => f.id)).toEqual([existing.id]);
      expect(after[0]!.etag).toBe(existing.etag);
    });

    it("lets concurrent batches report the same findings in any order: one finding each, no deadlock", async () => {
      const d = dir();
      const items = Array.from({ length: 300 }, (_, i) => finding({ filePath: `${d}c${i}.ts`, ruleId: "rule/c" }));
      const results = await Promise.all([batch(items), batch([...items].reverse()), batch(items), batch([...items].reverse())]);
      const ids = results[0]!.findings.map((f) => f.id);
      expect(new Set(ids).size).toBe(300);
      expect(results[1]!.findings.map((f) => f.id).reverse()).toEqual(ids);
      expect(results[2]!.findings.map((f) => f.id)).toEqual(ids);
      expect(await listAll(client(), { filePathPrefix: d })).toHaveLength(300);
    });

    it("refuses an empty batch and more than 1,000 findings", async () => {
      await expectCode(client().batchCreateFindings({ requests: [] }), Code.InvalidArgument);
      const d = dir();
      const tooMany = Array.from({ length: 1001 }, (_, i) => finding({ filePath: `${d}x.ts`, line: i + 1, message: `m${i}x` }));
      const err = await expectCode(batch(tooMany), Code.InvalidArgument);
      expect(err.message).toContain("requests");
      expect(await listAll(client(), { filePathPrefix: d })).toHaveLength(0);
    });

    it("commits 1,000 findings in one call quickly", async () => {
      const thousand = (d: string) => Array.from({ length: 1000 }, (_, i) =>
        finding({
          filePath: `${d}file${i % 50}.ts`,
          line: i + 1,
          endLine: i + 3,
          severity: (i % 5) + 1,
          message: `issue number ${i} in 'thing${i}'`,
          ruleId: `rule/${i}`,
          suggestion: "fix it",
        }),
      );
      // The first call of a process compiles the validators and JIT-warms the
      // codecs; what is measured is the steady state an analyzer's CI sees.
      await batch(thousand(dir()));
      // The best of three: a shared machine can stall any one call, but a
      // per-row round trip or a quadratic step slows every one of them.
      // Bounded on PostgreSQL, and not under `npm run mutate` (MUTATION_RUN):
      // there every expression of the gateway runs behind a mutant switch.
      const bounded = kind === "postgres" && process.env.MUTATION_RUN !== "1";
      let best = Infinity;
      let bestRerun = Infinity;
      for (let attempt = 0; attempt < 3; attempt++) {
        const d = dir();
        const items = thousand(d);
        const started = performance.now();
        const res = await batch(items);
        best = Math.min(best, performance.now() - started);
        expect(res.findings).toHaveLength(1000);
        expect(new Set(res.findings.map((f) => f.id)).size).toBe(1000);
        expect(await listAll(client(), { filePathPrefix: d })).toHaveLength(1000);

        // The next CI run reports the same 1,000: every row takes the conflict path.
        const again = performance.now();
        const rerun = await batch(items);
        bestRerun = Math.min(bestRerun, performance.now() - again);
        expect(rerun.findings.map((f) => f.id)).toEqual(res.findings.map((f) => f.id));
        expect(await listAll(client(), { filePathPrefix: d })).toHaveLength(1000);
        if (!bounded || (best < 1000 && bestRerun < 1000)) break;
      }
      console.log(`BatchCreateFindings of 1000 findings on ${kind}: ${best.toFixed(0)} ms new, ${bestRerun.toFixed(0)} ms re-reported (round trip, committed, best of up to 3)`);
      if (bounded) {
        expect(best).toBeLessThan(1000);
        expect(bestRerun).toBeLessThan(1000);
      }
    });
  });

  describe("ListFindings", () => {
    it("applies every filter as data", async () => {
      const d = dir();
      const made = (
        await batch([
          finding({ filePath: `${d}src/app.ts`, severity: Severity.CRITICAL, issueType: "sql-injection", message: "m1" }),
          finding({ filePath: `${d}src/app.ts.bak`, severity: Severity.LOW, message: "m2" }),
          finding({ filePath: `${d}src/lib/util.ts`, severity: Severity.HIGH, issueType: "sql-injection", message: "m3" }),
          finding({ filePath: `${d}100%_done/x.ts`, severity: Severity.INFO, message: "m4" }),
          finding({ filePath: `${d}100a_done/x.ts`, severity: Severity.MEDIUM, message: "m5" }),
        ])
      ).findings;
      const [app, bak, util, percent, lookalike] = made.map((f) => f.id);
      await client().updateFinding({
        finding: { id: util!, status: Status.RESOLVED },
        updateMask: create(FieldMaskSchema, { paths: ["status"] }),
      });
      const ids = async (req: Parameters<FindingClient["listFindings"]>[0]) =>
        (await client().listFindings({ pageSize: 1000, ...req })).findings.map((f) => f.id).sort();
      const sorted = (...xs: Array<string | undefined>) => [...xs].sort();

      expect(await ids({ filePath: `${d}src/app.ts` })).toEqual([app]);
      expect(await ids({ filePathPrefix: `${d}src/` })).toEqual(sorted(app, bak, util));
      // `%` and `_` in a prefix are literal characters, not patterns.
      expect(await ids({ filePathPrefix: `${d}100%_` })).toEqual([percent]);
      expect(await ids({ filePathPrefix: `${d}100%` })).toEqual([percent]);
      expect(await ids({ filePathPrefix: d, minSeverity: Severity.HIGH })).toEqual(sorted(app, util));
      expect(await ids({ filePathPrefix: d, status: [Status.RESOLVED] })).toEqual([util]);
      expect(await ids({ filePathPrefix: d, status: [Status.OPEN, Status.RESOLVED] })).toEqual(sorted(app, bak, util, percent, lookalike));
      expect(await ids({ filePathPrefix: d, issueType: "sql-injection" })).toEqual(sorted(app, util));
      expect(await ids({ filePathPrefix: d, issueType: "sql-injection", minSeverity: Severity.CRITICAL })).toEqual([app]);
      expect(await ids({ filePath: `${d}src/app.ts' or '1'='1` })).toEqual([]);
      expect(await ids({ filePathPrefix: `' or 1=1 --` })).toEqual([]);

      const seen = ms(made[0]!, "lastSeenTime");
      expect(await ids({ filePathPrefix: d, since: timestampFromDate(new Date(seen + 60_000)) })).toEqual([]);
      // The resolved finding's update does not move last_seen_time, so every finding is in [seen, seen + 1ms).
      expect(
        await ids({ filePathPrefix: d, since: timestampFromDate(new Date(seen)), until: timestampFromDate(new Date(seen + 1)) }),
      ).toHaveLength(5);
      expect(await ids({ filePathPrefix: d, until: timestampFromDate(new Date(seen)) })).toEqual([]);

      await expectCode(client().listFindings({ filePath: "a", filePathPrefix: "b" }), Code.InvalidArgument);
      await expectCode(client().listFindings({ status: [Status.UNSPECIFIED] }), Code.InvalidArgument);
      const t = timestampFromDate(new Date());
      await expectCode(client().listFindings({ since: t, until: t }), Code.InvalidArgument);
      for (const orderBy of ["severity sideways", "message", "severity; drop table findings", "id desc"]) {
        const err = await expectCode(client().listFindings({ orderBy }), Code.InvalidArgument);
        expect(err.message).toContain("order_by");
      }
    });

    const orders: Record<string, (f: Finding) => Array<number | string>> = {
      last_seen_time: (f) => [ms(f, "lastSeenTime"), f.id],
      first_seen_time: (f) => [ms(f, "firstSeenTime"), f.id],
      severity: (f) => [f.severity, ms(f, "lastSeenTime"), f.id],
      file_path: (f) => [f.filePath, f.line, f.id],
    };
    const compare = (a: Array<number | string>, b: Array<number | string>) => {
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
      return 0;
    };

    it("pages every ordering to the end, in order, without repeats or misses, while rows are inserted", async () => {
      const d = dir();
      const ids = new Set<string>();
      // Three batches: many findings share a last_seen_time, severity, file and line — only id tells them apart.
      for (let b = 0; b < 3; b++) {
        const res = await batch(
          Array.from({ length: 9 }, (_, i) =>
            finding({ filePath: `${d}f${i % 3}.ts`, line: (i % 2) + 1, severity: (i % 3) + 2, message: `b${b} i${i}` }),
          ),
        );
        for (const f of res.findings) ids.add(f.id);
      }
      let extra = 0;
      for (const field of Object.keys(orders)) {
        for (const direction of ["asc", "desc"]) {
          const orderBy = `${field} ${direction}`;
          const seen = await listAll(client(), { orderBy, filePathPrefix: d, pageSize: 4 }, async () => {
            await batch([finding({ filePath: `${d}f1.ts`, line: 1, severity: Severity.HIGH, message: `extra ${extra++}` })]);
          });
          const seenIds = seen.map((f) => f.id);
          expect(new Set(seenIds).size, orderBy).toBe(seenIds.length);
          for (const id of ids) expect(seenIds, orderBy).toContain(id);
          for (let i = 1; i < seen.length; i++) {
            const c = compare(orders[field]!(seen[i - 1]!), orders[field]!(seen[i]!));
            expect(direction === "asc" ? c : -c, `${orderBy} at ${i}`).toBeLessThan(0);
          }
        }
      }
      // "severity" alone means ascending; the default is last_seen_time desc.
      const asc = await listAll(client(), { orderBy: "severity", filePathPrefix: d });
      expect(asc.map((f) => f.id)).toEqual((await listAll(client(), { orderBy: "SEVERITY ASC", filePathPrefix: d })).map((f) => f.id));
      const byDefault = await listAll(client(), { filePathPrefix: d });
      expect(byDefault.map((f) => f.id)).toEqual((await listAll(client(), { orderBy: "last_seen_time desc", filePathPrefix: d })).map((f) => f.id));
    });

    it("binds page tokens to the filters and the order", async () => {
      const d = dir();
      await batch(Array.from({ length: 4 }, (_, i) => finding({ filePath: `${d}x.ts`, message: `t${i}` })));
      const first = await client().listFindings({ pageSize: 1, orderBy: "severity desc", filePathPrefix: d });
      expect(first.nextPageToken).not.toBe("");
      const token = first.nextPageToken;
      await expectCode(client().listFindings({ pageSize: 1, orderBy: "severity asc", filePathPrefix: d, pageToken: token }), Code.InvalidArgument);
      await expectCode(client().listFindings({ pageSize: 1, orderBy: "file_path desc", filePathPrefix: d, pageToken: token }), Code.InvalidArgument);
      await expectCode(client().listFindings({ pageSize: 1, orderBy: "severity desc", filePathPrefix: "t", pageToken: token }), Code.InvalidArgument);
      await expectCode(
        client().listFindings({ pageSize: 1, orderBy: "severity desc", filePathPrefix: d, minSeverity: Severity.LOW, pageToken: token }),
        Code.InvalidArgument,
      );
      const next = await client().listFindings({ pageSize: 1, orderBy: "severity desc", filePathPrefix: d, pageToken: token });
      expect(next.findings).toHaveLength(1);
    });
  });

  describe("UpdateFinding", () => {
    const setStatus = (f: Finding, status: Status, key?: string) =>
      client(key).updateFinding({ finding: { id: f.id, status }, updateMask: create(FieldMaskSchema, { paths: ["status"] }) });

    it("follows the status transitions, tracking resolve_time", async () => {
      const created = (await client().createFinding({ finding: finding({ filePath: `${dir()}t.ts` }) })).finding!;
      expect(created.status).toBe(Status.OPEN);
      expect(created.resolveTime).toBeUndefined();

      const resolved = (await setStatus(created, Status.RESOLVED)).finding!;
      expect(resolved.resolveTime).toBeDefined();
      const refused = await expectCode(setStatus(created, Status.ACKNOWLEDGED), Code.FailedPrecondition);
      expect(refused.findDetails(PreconditionFailureSchema)[0]?.violations[0]?.type).toBe("INVALID_STATUS_TRANSITION");
      await expectCode(setStatus(created, Status.FALSE_POSITIVE), Code.FailedPrecondition);
      expect((await client().getFinding({ id: created.id })).finding!.etag).toBe(resolved.etag);

      // Setting the same status again keeps the original resolve time.
      const again = (await setStatus(created, Status.RESOLVED)).finding!;
      expect(timestampDate(again.resolveTime!)).toEqual(timestampDate(resolved.resolveTime!));

      const reopened = (await setStatus(created, Status.OPEN)).finding!;
      expect(reopened.status).toBe(Status.OPEN);
      expect(reopened.resolveTime).toBeUndefined();
      await setStatus(created, Status.ACKNOWLEDGED);
      const dismissed = (await setStatus(created, Status.FALSE_POSITIVE)).finding!;
      await expectCode(setStatus(created, Status.RESOLVED), Code.FailedPrecondition);
      await expectCode(setStatus(created, Status.ACKNOWLEDGED), Code.FailedPrecondition);
      expect(dismissed.status).toBe(Status.FALSE_POSITIVE);
      expect((await setStatus(created, Status.OPEN)).finding!.status).toBe(Status.OPEN);

      await expectCode(setStatus(created, Status.UNSPECIFIED), Code.InvalidArgument);
      for (const path of ["line", "file_path", "fingerprint", "message", "last_seen_time"]) {
        await expectCode(
          client().updateFinding({ finding: { id: created.id, line: 5 }, updateMask: create(FieldMaskSchema, { paths: [path] }) }),
          Code.InvalidArgument,
        );
      }
      const severity = await client().updateFinding({
        finding: { id: created.id, severity: Severity.CRITICAL, issueType: "race-condition" },
        updateMask: create(FieldMaskSchema, { paths: ["severity", "issue_type"] }),
      });
      expect(severity.finding!.severity).toBe(Severity.CRITICAL);
      expect(severity.finding!.issueType).toBe("race-condition");
    });
  });

  describe("GetFindingSummary", () => {
    it("counts by severity and status and trends new and resolved findings per day", async () => {
      const d = dir();
      const made = (
        await batch(
          [Severity.CRITICAL, Severity.HIGH, Severity.HIGH, Severity.LOW, Severity.INFO].map((severity, i) =>
            finding({ filePath: `${d}s.ts`, severity, message: `s${i}` }),
          ),
        )
      ).findings;
      const set = (f: Finding, status: Status) =>
        client().updateFinding({ finding: { id: f.id, status }, updateMask: create(FieldMaskSchema, { paths: ["status"] }) });
      await set(made[0]!, Status.RESOLVED);
      await set(made[1]!, Status.RESOLVED);
      await set(made[2]!, Status.FALSE_POSITIVE);

      const summary = (await client("acme-viewer").getFindingSummary({ filePathPrefix: d, windowDays: 7 })).summary!;
      expect(summary.total).toBe(5n);
      expect(summary.bySeverity.map((c) => [c.severity, c.count])).toEqual([
        [Severity.INFO, 1n],
        [Severity.LOW, 1n],
        [Severity.MEDIUM, 0n],
        [Severity.HIGH, 2n],
        [Severity.CRITICAL, 1n],
      ]);
      expect(summary.byStatus.map((c) => [c.status, c.count])).toEqual([
        [Status.OPEN, 2n],
        [Status.ACKNOWLEDGED, 0n],
        [Status.RESOLVED, 2n],
        [Status.FALSE_POSITIVE, 1n],
      ]);
      const today = new Date().toISOString().slice(0, 10);
      expect(summary.trend).toHaveLength(7);
      expect(summary.trend.map((t) => t.date)).toEqual([...summary.trend.map((t) => t.date)].sort());
      expect(summary.trend[6]).toMatchObject({ date: today, newCount: 5n, resolvedCount: 2n });
      expect(summary.trend.slice(0, 6).every((t) => t.newCount === 0n && t.resolvedCount === 0n)).toBe(true);
      const weekAgo = new Date(Date.now() - 6 * 86_400_000).toISOString().slice(0, 10);
      expect(summary.trend[0]!.date).toBe(weekAgo);

      // A reopened finding no longer counts as resolved.
      await set(made[0]!, Status.OPEN);
      const after = (await client().getFindingSummary({ filePathPrefix: d })).summary!;
      expect(after.trend).toHaveLength(30);
      expect(after.trend[29]).toMatchObject({ newCount: 5n, resolvedCount: 1n });

      const everything = (await client().getFindingSummary({ windowDays: 365 })).summary!;
      expect(everything.total).toBeGreaterThan(5n);
      expect(everything.trend).toHaveLength(365);
      const err = await expectCode(client().getFindingSummary({ windowDays: 366 }), Code.InvalidArgument);
      expect(err.message).toContain("window_days");
    });

    it("ranks the files with the most unresolved findings, ties by path, resolved and false positives left out", async () => {
      const d = dir();
      const paths = [`${d}b.ts`, `${d}b.ts`, `${d}a.ts`, `${d}c.ts`, `${d}c.ts`, `${d}c.ts`, `${d}done.ts`];
      const made = (await batch(paths.map((filePath, i) => finding({ filePath, message: `t${i}` })))).findings;
      const set = (f: Finding, status: Status) =>
        client().updateFinding({ finding: { id: f.id, status }, updateMask: create(FieldMaskSchema, { paths: ["status"] }) });
      await set(made[0]!, Status.ACKNOWLEDGED);
      await set(made[3]!, Status.RESOLVED);
      await set(made[6]!, Status.FALSE_POSITIVE);
      const summary = (await client("acme-viewer").getFindingSummary({ filePathPrefix: d })).summary!;
      expect(summary.topFiles.map((f) => [f.filePath, f.unresolvedCount])).toEqual([
        [`${d}b.ts`, 2n],
        [`${d}c.ts`, 2n],
        [`${d}a.ts`, 1n],
      ]);
    });
  });

  describe("CorrelateAlert", () => {
    it("ranks findings by location evidence and leaves unrelated files out", async () => {
      const d = dir();
      const path = `${d}src/payments/charge.ts`;
      const [onLine, farAway, unrelated, resolved, inStack] = (
        await batch([
          finding({ filePath: path, line: 40, endLine: 44, issueType: "null-dereference", message: "amount may be null" }),
          finding({ filePath: path, line: 242, issueType: "null-dereference", message: "amount may be null here" }),
          finding({ filePath: `${d}src/other/unrelated.ts`, line: 42, issueType: "null-dereference", message: "amount may be null too" }),
          finding({ filePath: path, line: 42, message: "fixed already" }),
          finding({ filePath: `${d}src/jobs/retry.ts`, line: 10, endLine: 14, message: "unbounded retry" }),
        ])
      ).findings;
      await client().updateFinding({
        finding: { id: resolved!.id, status: Status.RESOLVED },
        updateMask: create(FieldMaskSchema, { paths: ["status"] }),
      });

      const res = await client("acme-analyzer").correlateAlert({
        filePath: `/srv/app/${path}`,
        line: 42,
        errorMessage: "TypeError: Cannot read properties of null (reading 'amount')",
        stackTrace: [
          `TypeError: Cannot read properties of null (reading 'amount')`,
          `    at charge (/srv/app/${path}:42:17)`,
          `    at retry (/srv/app/${d}src/jobs/retry.ts:12:5)`,
          `    at node:internal/process/task_queues:95:5`,
        ].join("\n"),
      });
      const ranked = res.findings.map((c) => c.finding!.id);
      expect(ranked).toEqual([onLine!.id, inStack!.id, farAway!.id]);
      const [first, second, third] = res.findings;
      expect(first!.confidence).toBeGreaterThan(third!.confidence);
      expect(first!.confidence).toBeLessThanOrEqual(1);
      expect(third!.confidence).toBeGreaterThan(0);
      expect(first!.reason).toContain("alert line 42 is inside lines 40-44");
      expect(first!.reason).toContain("amount");
      expect(second!.reason).toContain("stack frame #1");
      expect(third!.reason).toContain("200 lines from line 242");
      expect(ranked).not.toContain(unrelated!.id);
      expect(ranked).not.toContain(resolved!.id);

      // The unrelated finding shares every word with the error, yet scores 0.
      const alert = { filePath: path, line: 42, errorMessage: "null-dereference amount may be null too", stackTrace: "" };
      expect(correlate(alert, [toDomain(unrelated!)])).toEqual([]);

      const limited = await client().correlateAlert({ filePath: path, line: 42, maxResults: 1 });
      expect(limited.findings.map((c) => c.finding!.id)).toEqual([onLine!.id]);
      const exact = await client().correlateAlert({ filePath: path, line: 242 });
      expect(exact.findings[0]!.finding!.id).toBe(farAway!.id);
      expect(exact.findings[0]!.reason).toBe("in the alert's file; alert line 242 is on line 242");
      const nothing = await client().correlateAlert({ filePath: `${d}src/nowhere.ts`, line: 42, errorMessage: "amount null" });
      expect(nothing.findings).toEqual([]);
    });
  });

  describe("permissions", () => {
    it("lets the analyzer report and read findings, but not change or delete them", async () => {
      const d = dir();
      const analyzer = client("acme-analyzer");
      const created = (await analyzer.createFinding({ finding: finding({ filePath: `${d}a.ts` }) })).finding!;
      const batched = await analyzer.batchCreateFindings({ requests: [{ finding: finding({ filePath: `${d}b.ts` }) }] });
      expect(batched.findings).toHaveLength(1);
      expect((await analyzer.getFinding({ id: created.id })).finding).toEqual(created);
      expect((await analyzer.listFindings({ filePathPrefix: d })).findings).toHaveLength(2);
      expect((await analyzer.getFindingSummary({ filePathPrefix: d })).summary!.total).toBe(2n);
      await expectCode(
        analyzer.updateFinding({ finding: { id: created.id, status: Status.RESOLVED }, updateMask: create(FieldMaskSchema, { paths: ["status"] }) }),
        Code.PermissionDenied,
      );
      await expectCode(analyzer.deleteFinding({ id: created.id }), Code.PermissionDenied);
      await expectCode(client("acme-viewer").batchCreateFindings({ requests: [{ finding: finding() }] }), Code.PermissionDenied);
      expect((await client().getFinding({ id: created.id })).finding).toEqual(created);
    });
  });
});

/** The domain shape of a finding message, for the pure scoring function. */
function toDomain(f: Finding) {
  const date = (t: Finding["createTime"]) => timestampDate(t!);
  return {
    id: f.id,
    filePath: f.filePath,
    line: f.line,
    endLine: f.endLine,
    severity: "medium" as const,
    issueType: f.issueType,
    ruleId: f.ruleId,
    message: f.message,
    suggestion: f.suggestion,
    status: "open" as const,
    fingerprint: f.fingerprint,
    source: f.source,
    firstSeenTime: date(f.firstSeenTime),
    lastSeenTime: date(f.lastSeenTime),
    resolveTime: undefined,
    version: 1,
    createTime: date(f.createTime),
    updateTime: date(f.updateTime),
  };
}
