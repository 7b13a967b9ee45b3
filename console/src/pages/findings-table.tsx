import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useId, useState } from "react";
import { type Finding, Finding_Severity, Finding_Status, FindingService } from "../../../gen/anvil/findings/v1/findings_pb.js";
import { useCan } from "../caller.js";
import { ErrorMessage } from "../errors.js";
import { ListStatus } from "../components/list-status.js";
import { Pager, usePageTokens } from "../paging.js";
import { findingsRefreshMs, orders, severities, severityLabel, statuses, statusLabel } from "../findings.js";

interface Filters {
  readonly filePathPrefix: string;
  readonly issueType: string;
  readonly minSeverity: Finding_Severity;
  readonly status: readonly Finding_Status[];
  readonly orderBy: string;
}

const noFilters: Filters = { filePathPrefix: "", issueType: "", minSeverity: Finding_Severity.UNSPECIFIED, status: [], orderBy: "" };
const pageSize = 20;

/**
 * ListFindings with its filters and orders, a page at a time (keyset paging:
 * the tokens of the pages seen so far are kept to go back), and triage
 * actions for those who may write findings.
 */
export function FindingsTable() {
  const [filters, setFilters] = useState<Filters>(noFilters);
  const paging = usePageTokens();
  const list = useQuery(
    FindingService.method.listFindings,
    { ...filters, status: [...filters.status], pageSize, pageToken: paging.pageToken },
    { refetchInterval: findingsRefreshMs, placeholderData: (previous) => previous },
  );
  const canTriage = useCan("findings.write");
  const apply = (next: Filters) => {
    setFilters(next);
    paging.reset();
  };
  const findings = list.data?.findings ?? [];
  return (
    <section aria-labelledby="findings-heading">
      <h2 id="findings-heading">All findings</h2>
      <FilterForm filters={filters} onApply={apply} />
      <ListStatus query={list} count={findings.length} loading="Loading findings…" empty={<>No findings match these filters.</>}>
        <div className="table-wrap">
          <table className="findings">
            <caption className="visually-hidden">Findings, page {paging.page}</caption>
            <thead>
              <tr>
                <th scope="col">Severity</th>
                <th scope="col">Status</th>
                <th scope="col">Location</th>
                <th scope="col">Issue</th>
                <th scope="col">Message</th>
                {canTriage && <th scope="col">Triage</th>}
              </tr>
            </thead>
            <tbody>
              {findings.map((f) => (
                <FindingRow key={f.id} finding={f} canTriage={canTriage} />
              ))}
            </tbody>
          </table>
        </div>
      </ListStatus>
      <Pager label="Findings pages" paging={paging} nextPageToken={list.data?.nextPageToken} />
    </section>
  );
}

function FilterForm({ filters, onApply }: { filters: Filters; onApply: (f: Filters) => void }) {
  const [draft, setDraft] = useState(filters);
  const id = useId();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onApply(draft);
  };
  const toggle = (s: Finding_Status) =>
    setDraft({ ...draft, status: draft.status.includes(s) ? draft.status.filter((x) => x !== s) : [...draft.status, s] });
  return (
    <form className="filters" onSubmit={submit} aria-label="Filter findings">
      <div className="field">
        <label htmlFor={`${id}-prefix`}>Path starts with</label>
        <input id={`${id}-prefix`} value={draft.filePathPrefix} onChange={(e) => setDraft({ ...draft, filePathPrefix: e.target.value })} placeholder="src/billing/" />
      </div>
      <div className="field">
        <label htmlFor={`${id}-type`}>Issue type</label>
        <input id={`${id}-type`} value={draft.issueType} onChange={(e) => setDraft({ ...draft, issueType: e.target.value })} placeholder="sql-injection" />
      </div>
      <div className="field">
        <label htmlFor={`${id}-sev`}>At least</label>
        <select id={`${id}-sev`} value={draft.minSeverity} onChange={(e) => setDraft({ ...draft, minSeverity: Number(e.target.value) })}>
          <option value={Finding_Severity.UNSPECIFIED}>Any severity</option>
          {[...severities].reverse().map((s) => (
            <option key={s.value} value={s.value}>
              {s.label}
            </option>
          ))}
        </select>
      </div>
      <fieldset className="field">
        <legend>Status</legend>
        {statuses.map((s) => (
          <label key={s.value} className="check">
            <input type="checkbox" checked={draft.status.includes(s.value)} onChange={() => toggle(s.value)} /> {s.label}
          </label>
        ))}
      </fieldset>
      <div className="field">
        <label htmlFor={`${id}-order`}>Order</label>
        <select id={`${id}-order`} value={draft.orderBy} onChange={(e) => setDraft({ ...draft, orderBy: e.target.value })}>
          <option value="">Last seen, newest first (default)</option>
          {orders.slice(1).map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ))}
        </select>
      </div>
      <div className="actions">
        <button type="submit">Apply filters</button>
        <button type="button" className="secondary" onClick={() => (setDraft(noFilters), onApply(noFilters))}>
          Clear
        </button>
      </div>
    </form>
  );
}

/**
 * One finding, and for triagers a status change. Every other status is
 * offered: the gateway owns the transition rules and its precondition
 * errors are shown next to the row, not guessed here.
 */
function FindingRow({ finding, canTriage }: { finding: Finding; canTriage: boolean }) {
  const client = useQueryClient();
  const id = useId();
  const [target, setTarget] = useState<Finding_Status | undefined>();
  const update = useMutation(FindingService.method.updateFinding, {
    onSuccess: () => {
      setTarget(undefined);
      return client.invalidateQueries();
    },
  });
  const tone = severities.find((s) => s.value === finding.severity)?.tone ?? "info";
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (target === undefined || update.isPending) return;
    update.mutate({ finding: { id: finding.id, etag: finding.etag, status: target }, updateMask: { paths: ["status"] } });
  };
  const location = `${finding.filePath}:${finding.line}`;
  return (
    <tr>
      <td>
        <span className={`badge tone-${tone}`}>{severityLabel(finding.severity)}</span>
      </td>
      <td>{statusLabel(finding.status)}</td>
      <td className="mono">{location}</td>
      <td>{finding.issueType}</td>
      <td>{finding.message}</td>
      {canTriage && (
        <td>
          <form className="triage" onSubmit={submit}>
            <label htmlFor={id} className="visually-hidden">
              New status for {location}
            </label>
            <select id={id} value={target ?? ""} onChange={(e) => setTarget(e.target.value === "" ? undefined : Number(e.target.value))}>
              <option value="">Change status…</option>
              {statuses
                .filter((s) => s.value !== finding.status)
                .map((s) => (
                  <option key={s.value} value={s.value}>
                    {s.label}
                  </option>
                ))}
            </select>
            {/* aria-disabled, not disabled: a disabled button drops the keyboard focus it has, mid-triage. */}
            <button type="submit" aria-disabled={target === undefined || update.isPending} aria-label={`Apply status to ${location}`}>
              Apply
            </button>
          </form>
          {update.isError && <ErrorMessage error={update.error} />}
        </td>
      )}
    </tr>
  );
}
