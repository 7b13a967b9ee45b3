import { useQuery } from "@connectrpc/connect-query";
import { useId, useState } from "react";
import { FindingService } from "../../../gen/anvil/findings/v1/findings_pb.js";
import { TrendChart } from "../components/trend-chart.js";
import { ErrorMessage } from "../errors.js";
import { findingsRefreshMs, severities, statuses } from "../findings.js";
import { FindingsTable } from "./findings-table.js";

const windows = [7, 30, 90] as const;

/** The findings dashboard: counts by severity and status, the trend over a chosen window, and the findings table. */
export function Dashboard() {
  const [windowDays, setWindowDays] = useState<number>(30);
  const windowId = useId();
  const summary = useQuery(FindingService.method.getFindingSummary, { windowDays }, { refetchInterval: findingsRefreshMs });
  const data = summary.data?.summary;
  return (
    <>
      <h1 tabIndex={-1}>Findings</h1>
      {summary.isError && <ErrorMessage error={summary.error} />}
      {summary.isPending && <p role="status">Loading the summary…</p>}
      {data && (
        <>
          <section aria-labelledby="counts-heading" className="cards">
            <h2 id="counts-heading" className="visually-hidden">
              Counts
            </h2>
            <article className="card" aria-label="Total findings">
              <span className="card-label">Total</span>
              <span className="card-value" data-testid="total">{data.total.toString()}</span>
            </article>
            {severities.map((s) => (
              <article key={s.value} className={`card tone-${s.tone}`} aria-label={`${s.label} findings`}>
                <span className="card-label">{s.label}</span>
                <span className="card-value">{(data.bySeverity.find((c) => c.severity === s.value)?.count ?? 0n).toString()}</span>
              </article>
            ))}
          </section>
          <section aria-labelledby="status-heading">
            <h2 id="status-heading">By status</h2>
            <dl className="statuses">
              {statuses.map((s) => (
                <div key={s.value}>
                  <dt>{s.label}</dt>
                  <dd>{(data.byStatus.find((c) => c.status === s.value)?.count ?? 0n).toString()}</dd>
                </div>
              ))}
            </dl>
          </section>
          <section aria-labelledby="trend-heading">
            <div className="section-head">
              <h2 id="trend-heading">Trend</h2>
              <label htmlFor={windowId}>Window</label>
              <select id={windowId} value={windowDays} onChange={(e) => setWindowDays(Number(e.target.value))}>
                {windows.map((w) => (
                  <option key={w} value={w}>
                    Last {w} days
                  </option>
                ))}
              </select>
            </div>
            <TrendChart days={data.trend} />
          </section>
          <section aria-labelledby="files-heading">
            <h2 id="files-heading">Files with the most unresolved findings</h2>
            {data.topFiles.length === 0 ? (
              <p className="empty">No unresolved findings: nothing is open or acknowledged.</p>
            ) : (
              <ol className="top-files">
                {data.topFiles.map((f) => (
                  <li key={f.filePath}>
                    <span className="mono">{f.filePath}</span> <strong>{f.unresolvedCount.toString()}</strong> unresolved
                  </li>
                ))}
              </ol>
            )}
          </section>
        </>
      )}
      <FindingsTable />
    </>
  );
}
