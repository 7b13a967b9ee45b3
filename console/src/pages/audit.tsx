import { useQuery } from "@connectrpc/connect-query";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type FormEvent, useId, useState } from "react";
import { AuditEvent_Kind, AuditService } from "../../../gen/anvil/audit/v1/audit_pb.js";
import { Code } from "../../../gen/google/rpc/code_pb.js";
import { ListStatus } from "../components/list-status.js";
import { Pager, usePageTokens } from "../paging.js";

const kinds: Record<AuditEvent_Kind, string> = {
  [AuditEvent_Kind.UNSPECIFIED]: "Event",
  [AuditEvent_Kind.MUTATION]: "Change",
  [AuditEvent_Kind.REFUSAL]: "Refused",
  [AuditEvent_Kind.DROPPED]: "Dropped",
};

/** The audit log, newest first, filtered by subject, method and resource. */
export function AuditLog() {
  const [filters, setFilters] = useState({ subject: "", method: "", resourceId: "" });
  const [draft, setDraft] = useState(filters);
  const paging = usePageTokens();
  const id = useId();
  const list = useQuery(AuditService.method.listAuditEvents, { ...filters, pageSize: 50, pageToken: paging.pageToken }, { placeholderData: (p) => p });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setFilters(draft);
    paging.reset();
  };
  const events = list.data?.events ?? [];
  return (
    <>
      <h1 tabIndex={-1}>Audit log</h1>
      <form className="filters" onSubmit={submit} aria-label="Filter the audit log">
        {(["subject", "method", "resourceId"] as const).map((k) => (
          <div className="field" key={k}>
            <label htmlFor={`${id}-${k}`}>{k === "resourceId" ? "Resource id" : k === "subject" ? "Subject" : "Method"}</label>
            <input id={`${id}-${k}`} value={draft[k]} onChange={(e) => setDraft({ ...draft, [k]: e.target.value })} />
          </div>
        ))}
        <div className="actions">
          <button type="submit">Apply filters</button>
        </div>
      </form>
      <ListStatus query={list} count={events.length} loading="Loading the audit log…" empty={<>No audit events match.</>}>
        <table>
          <caption className="visually-hidden">Audit events, page {paging.page}</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Kind</th>
              <th scope="col">Who</th>
              <th scope="col">Method</th>
              <th scope="col">Outcome</th>
              <th scope="col">Resources</th>
            </tr>
          </thead>
          <tbody>
            {events.map((e) => (
              <tr key={e.id}>
                <td>{e.time ? timestampDate(e.time).toLocaleString() : ""}</td>
                <td>{kinds[e.kind]}</td>
                <td>{e.subject}</td>
                <td className="mono">{e.method}</td>
                <td>{Code[e.outcome] ?? e.outcome}</td>
                <td className="mono">{e.resourceIds.join(", ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ListStatus>
      <Pager label="Audit log pages" paging={paging} nextPageToken={list.data?.nextPageToken} />
    </>
  );
}
