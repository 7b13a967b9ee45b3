import { randomUUID } from "node:crypto";
import { type Insertable, type Selectable, sql, type Transaction } from "kysely";
import { likePrefix } from "../db/like-prefix.js";
import type { SortKey } from "../db/keyset.js";
import type { Database } from "../db/schema.js";
import { ScopedTable } from "../db/scoped-table.js";
import {
  type Finding,
  type FindingPatch,
  type FindingStatus,
  type NewFinding,
  type Severity,
  severityOfRank,
  severityRank,
} from "./finding.js";
import { type FindingFilter, type FindingOrder, findingOrderKeysets } from "./finding-query.js";
import type { FindingTable } from "./finding.table.js";

/** A finding to write, its fingerprint already settled. */
export type FingerprintedFinding = NewFinding & { readonly fingerprint: string };

/** What an update writes: the patch plus the resolve time that follows from the status. */
export type FindingChange = FindingPatch & { readonly resolveTime?: Date | undefined };

/** One (severity, status) group of the tenant's findings. */
export interface FindingCount {
  readonly severity: Severity;
  readonly status: FindingStatus;
  readonly count: number;
}

// PostgreSQL binds at most 65535 parameters per statement.
const maxParameters = 65_535;

/** Queries over `findings`, always within one transaction and one tenant. */
export class FindingRepository {
  readonly #trx: Transaction<Database>;
  readonly #tenant: string;
  readonly #table: ScopedTable<"findings">;

  constructor(trx: Transaction<Database>, tenant: string) {
    this.#trx = trx;
    this.#tenant = tenant;
    this.#table = new ScopedTable(trx, tenant, "findings", "finding");
  }

  /** The finding, or NOT_FOUND; `lock` holds it until the transaction ends. */
  // Stryker disable next-line StringLiteral: equivalent: ScopedTable.get locks only for "update" or "share"
  async get(id: string, lock: "none" | "update" = "none"): Promise<Finding> {
    return toFinding(await this.#table.get(id, lock));
  }

  /** Up to `limit` findings matching `filter`, in `order`, after the keyset position `after`. */
  async list(filter: FindingFilter, order: FindingOrder, limit: number, after: readonly unknown[] | undefined): Promise<Finding[]> {
    const keys: SortKey[] = findingOrderKeysets[order.field].columns.map((column) => ({ column, direction: order.direction }));
    const rows = await this.#table.list(keys, limit, after, (query) => applyFilter(query, filter));
    return rows.map(toFinding);
  }

  /**
   * Inserts the findings with one multi-row statement per chunk; a finding
   * whose fingerprint the tenant already has only moves that row's
   * last_seen_time (and version) forward. Fingerprints must be distinct.
   * Returns the stored findings keyed by fingerprint.
   */
  async upsert(findings: readonly FingerprintedFinding[]): Promise<Map<string, Finding>> {
    const out = new Map<string, Finding>();
    if (findings.length === 0) return out;
    // Rows in fingerprint order: two batches sharing findings then take their
    // row locks in the same order and wait for each other instead of deadlocking.
    const rows = findings.map((f) => this.#row(f)).sort((a, b) => (a.fingerprint < b.fingerprint ? -1 : 1));
    const chunkSize = Math.floor(maxParameters / Object.keys(rows[0]!).length);
    for (let start = 0; start < rows.length; start += chunkSize) {
      const stored = await this.#trx
        .insertInto("findings")
        .values(rows.slice(start, start + chunkSize))
        .onConflict((oc) =>
          oc.columns(["tenant_id", "fingerprint"]).doUpdateSet((eb) => ({
            last_seen_time: eb.ref("excluded.last_seen_time"),
            update_time: eb.ref("excluded.update_time"),
            version: sql<number>`findings.version + 1`,
          })),
        )
        .returningAll()
        .execute();
      for (const row of stored) out.set(row.fingerprint, toFinding(row));
    }
    return out;
  }

  /** Applies `change`; when `expectedVersion` is given, only to that version. */
  async update(id: string, change: FindingChange, expectedVersion: number | undefined): Promise<Finding> {
    const values = {
      ...(change.status !== undefined && { status: change.status, resolve_time: change.resolveTime ?? null }),
      ...(change.severity !== undefined && { severity: severityRank(change.severity) }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(change.issueType !== undefined && { issue_type: change.issueType }),
      // Stryker disable next-line ConditionalExpression: 'always' is equivalent (kysely leaves a column set to undefined out of an update); 'never', on the same line, is what the update tests kill
      ...(change.suggestion !== undefined && { suggestion: change.suggestion }),
    };
    return toFinding(await this.#table.update(id, values, expectedVersion));
  }

  delete(id: string, expectedVersion: number | undefined): Promise<void> {
    return this.#table.delete(id, expectedVersion);
  }

  /** Counts per (severity, status) of the tenant's findings, optionally under a path prefix. */
  async counts(filePathPrefix: string | undefined): Promise<FindingCount[]> {
    let query = this.#trx
      .selectFrom("findings")
      .select(["severity", "status", (eb) => eb.fn.countAll().as("count")])
      .where("tenant_id", "=", this.#tenant);
    if (filePathPrefix) query = query.where("file_path", "like", likePrefix(filePathPrefix));
    const rows = await query.groupBy(["severity", "status"]).execute();
    return rows.map((r) => ({ severity: severityOfRank(r.severity), status: r.status as FindingStatus, count: Number(r.count) }));
  }

  /**
   * Findings per UTC day (`YYYY-MM-DD`) of `column` from `since` on,
   * optionally under a path prefix. Days without findings are absent.
   */
  async perDay(column: "first_seen_time" | "resolve_time", since: Date, filePathPrefix: string | undefined): Promise<Map<string, number>> {
    let query = this.#trx
      .selectFrom("findings")
      .select((eb) => [
        sql<string>`to_char(${sql.ref(column)} at time zone 'UTC', 'YYYY-MM-DD')`.as("day"),
        eb.fn.countAll().as("count"),
      ])
      .where("tenant_id", "=", this.#tenant)
      .where(column, ">=", since);
    if (filePathPrefix) query = query.where("file_path", "like", likePrefix(filePathPrefix));
    const rows = await query.groupBy("day").execute();
    return new Map(rows.map((r) => [r.day, Number(r.count)]));
  }

  /** The `limit` files with the most unresolved (open or acknowledged) findings, most first, ties by path. */
  async topFiles(filePathPrefix: string | undefined, limit: number): Promise<Array<{ filePath: string; count: number }>> {
    let query = this.#trx
      .selectFrom("findings")
      .select(["file_path", (eb) => eb.fn.countAll().as("count")])
      .where("tenant_id", "=", this.#tenant)
      .where("status", "in", ["open", "acknowledged"]);
    if (filePathPrefix) query = query.where("file_path", "like", likePrefix(filePathPrefix));
    const rows = await query.groupBy("file_path").orderBy("count", "desc").orderBy("file_path").limit(limit).execute();
    return rows.map((r) => ({ filePath: r.file_path, count: Number(r.count) }));
  }

  /** Up to `limit` unresolved (open or acknowledged) findings in any of `filePaths`. */
  async unresolvedIn(filePaths: readonly string[], limit: number): Promise<Finding[]> {
    if (filePaths.length === 0) return [];
    const rows = await this.#trx
      .selectFrom("findings")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("file_path", "in", [...filePaths])
      .where("status", "in", ["open", "acknowledged"])
      .orderBy("file_path")
      .orderBy("line")
      .orderBy("id")
      .limit(limit)
      .execute();
    return rows.map(toFinding);
  }

  #row(f: FingerprintedFinding): Insertable<FindingTable> {
    return {
      tenant_id: this.#tenant,
      id: randomUUID(),
      file_path: f.filePath,
      line: f.line,
      end_line: f.endLine,
      severity: severityRank(f.severity),
      issue_type: f.issueType,
      rule_id: f.ruleId,
      message: f.message,
      suggestion: f.suggestion,
      status: f.status,
      fingerprint: f.fingerprint,
      source: f.source,
      // A finding reported as already resolved counts as resolved now.
      resolve_time: f.status === "resolved" ? new Date() : null,
    };
  }
}

// Filter values only ever reach SQL as bound parameters.
function applyFilter(query: any, filter: FindingFilter): any {
  let q = query;
  if (filter.filePath) q = q.where("file_path", "=", filter.filePath);
  if (filter.filePathPrefix) q = q.where("file_path", "like", likePrefix(filter.filePathPrefix));
  // Stryker disable next-line ConditionalExpression: 'always' is equivalent: with no minimum, severity >= 0 keeps every finding (ranks start at 1)
  if (filter.minSeverity) q = q.where("severity", ">=", severityRank(filter.minSeverity));
  if (filter.statuses && filter.statuses.length > 0) q = q.where("status", "in", [...filter.statuses]);
  if (filter.issueType) q = q.where("issue_type", "=", filter.issueType);
  if (filter.since) q = q.where("last_seen_time", ">=", filter.since);
  if (filter.until) q = q.where("last_seen_time", "<", filter.until);
  return q;
}

function toFinding(row: Selectable<FindingTable>): Finding {
  return {
    id: row.id,
    filePath: row.file_path,
    line: row.line,
    endLine: row.end_line,
    severity: severityOfRank(row.severity),
    issueType: row.issue_type,
    ruleId: row.rule_id,
    message: row.message,
    suggestion: row.suggestion,
    status: row.status as FindingStatus,
    fingerprint: row.fingerprint,
    source: row.source,
    firstSeenTime: row.first_seen_time,
    lastSeenTime: row.last_seen_time,
    resolveTime: row.resolve_time ?? undefined,
    version: row.version,
    createTime: row.create_time,
    updateTime: row.update_time,
  };
}
