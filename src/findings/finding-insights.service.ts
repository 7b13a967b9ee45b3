import type { UnitOfWork } from "../db/unit-of-work.js";
import { InvalidArgumentError } from "../shared/errors.js";
import type { Scope } from "../shared/scope.js";
import { type FindingStatus, findingStatuses, type Severity, severities } from "./finding.js";
import { mapInSlices } from "../shared/time-slices.js";
import { type Alert, type Correlation, rank, readAlert, scorer } from "./correlation.js";

/** Default and largest trend window, in days. */
export const defaultWindowDays = 30;
export const maxWindowDays = 365;

/** Default and largest number of correlated findings returned. */
export const defaultCorrelations = 10;
export const maxCorrelations = 100;

// Scoring more candidates than this would not change the top results in
// practice, and keeps one alert from pulling a whole tenant into memory.
const maxCandidates = 2000;

/** Counts over a tenant's findings and the daily trend. */
export interface FindingSummary {
  readonly total: number;
  readonly bySeverity: ReadonlyArray<{ readonly severity: Severity; readonly count: number }>;
  readonly byStatus: ReadonlyArray<{ readonly status: FindingStatus; readonly count: number }>;
  /** One entry per UTC day of the window, oldest first. */
  readonly trend: ReadonlyArray<{ readonly date: string; readonly newCount: number; readonly resolvedCount: number }>;
  /** The files with the most unresolved findings, most first (at most topFilesLimit). */
  readonly topFiles: ReadonlyArray<{ readonly filePath: string; readonly count: number }>;
}

/** How many files the summary ranks by unresolved findings. */
export const topFilesLimit = 10;

/**
 * The read-only views over many findings: the summary a dashboard shows and
 * the correlation of a production alert with the findings that may explain
 * it. Each runs in one unit of work, so its numbers are one consistent
 * snapshot.
 */
export class FindingInsightsService {
  readonly #uow: UnitOfWork;

  constructor(uow: UnitOfWork) {
    this.#uow = uow;
  }

  /** Counts by severity and status, and new/resolved per day over `windowDays` ending today (UTC). */
  summary(scope: Scope, filePathPrefix: string | undefined, windowDays: number, now = new Date()): Promise<FindingSummary> {
    if (!Number.isInteger(windowDays) || windowDays < 1 || windowDays > maxWindowDays) {
      throw InvalidArgumentError.field("window_days", `must be between 1 and ${maxWindowDays}`);
    }
    const days = trendDays(now, windowDays);
    const since = new Date(`${days[0]}T00:00:00.000Z`);
    return this.#uow.transact(scope, async (tx) => {
      const counts = await tx.findings.counts(filePathPrefix);
      const created = await tx.findings.perDay("first_seen_time", since, filePathPrefix);
      const resolved = await tx.findings.perDay("resolve_time", since, filePathPrefix);
      const topFiles = await tx.findings.topFiles(filePathPrefix, topFilesLimit);
      const sum = (keep: (c: (typeof counts)[number]) => boolean) => counts.filter(keep).reduce((n, c) => n + c.count, 0);
      return {
        total: sum(() => true),
        bySeverity: severities.map((severity) => ({ severity, count: sum((c) => c.severity === severity) })),
        byStatus: findingStatuses.map((status) => ({ status, count: sum((c) => c.status === status) })),
        trend: days.map((date) => ({ date, newCount: created.get(date) ?? 0, resolvedCount: resolved.get(date) ?? 0 })),
        topFiles,
      };
    });
  }

  /** The unresolved findings most likely related to `alert`, best first, at most `limit`. */
  async correlate(scope: Scope, alert: Alert, limit: number): Promise<Correlation[]> {
    if (!Number.isInteger(limit) || limit < 1 || limit > maxCorrelations) {
      throw InvalidArgumentError.field("max_results", `must be between 1 and ${maxCorrelations}`);
    }
    // Only findings in the alert's file or a frame's file can score above
    // 0, so only those are fetched (by the file_path index).
    // The stack trace is parsed and its paths indexed once per alert.
    const evidence = readAlert(alert);
    const candidates = await this.#uow.transact(scope, (tx) => tx.findings.unresolvedIn(evidence.paths, maxCandidates));
    // Splitting 2,000 messages of up to 4,000 characters into words takes
    // a while: in slices, outside the transaction.
    return rank(await mapInSlices(candidates, scorer(alert, evidence))).slice(0, limit);
  }
}

/** The `YYYY-MM-DD` UTC dates of the `count` days ending on `now`'s, oldest first. */
function trendDays(now: Date, count: number): string[] {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return Array.from({ length: count }, (_, i) => new Date(today - (count - 1 - i) * 86_400_000).toISOString().slice(0, 10));
}
