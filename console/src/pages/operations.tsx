import { useQuery } from "@connectrpc/connect-query";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type FormEvent, useId, useState } from "react";
import { type Operation, Operation_State, OperationService } from "../../../gen/anvil/operations/v1/operations_pb.js";
import { operationStateLabel, operationStates, percent } from "../operations.js";
import { ListStatus } from "../components/list-status.js";
import { Pager, usePageTokens } from "../paging.js";
import { Link } from "../router.js";

interface Filters {
  readonly state: Operation_State;
  readonly kind: string;
  readonly resource: string;
}

/** The tenant's operations, newest first, filtered by state, kind and resource; refreshed every few seconds. */
export function Operations() {
  const [filters, setFilters] = useState<Filters>({ state: Operation_State.UNSPECIFIED, kind: "", resource: "" });
  const [draft, setDraft] = useState(filters);
  const paging = usePageTokens();
  const id = useId();
  const list = useQuery(
    OperationService.method.listOperations,
    { ...filters, pageSize: 25, pageToken: paging.pageToken },
    { refetchInterval: 3_000, placeholderData: (previous) => previous },
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setFilters(draft);
    paging.reset();
  };
  const operations = list.data?.operations ?? [];
  return (
    <>
      <h1 tabIndex={-1}>Operations</h1>
      <form className="filters" onSubmit={submit} aria-label="Filter operations">
        <div className="field">
          <label htmlFor={`${id}-state`}>State</label>
          <select id={`${id}-state`} value={draft.state} onChange={(e) => setDraft({ ...draft, state: Number(e.target.value) })}>
            <option value={Operation_State.UNSPECIFIED}>Any state</option>
            {operationStates.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-kind`}>Kind</label>
          <input id={`${id}-kind`} value={draft.kind} onChange={(e) => setDraft({ ...draft, kind: e.target.value })} placeholder="workflow.run" />
        </div>
        <div className="field">
          <label htmlFor={`${id}-resource`}>Resource</label>
          <input id={`${id}-resource`} value={draft.resource} onChange={(e) => setDraft({ ...draft, resource: e.target.value })} placeholder="workflows/…" />
        </div>
        <div className="actions">
          <button type="submit">Apply filters</button>
        </div>
      </form>
      <ListStatus query={list} count={operations.length} loading="Loading operations…" empty={<>No operations match. Operations appear when a workflow runs, an IPA executes or an analysis starts.</>}>
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Operations, page {paging.page}</caption>
            <thead>
              <tr>
                <th scope="col">Operation</th>
                <th scope="col">Kind</th>
                <th scope="col">Resource</th>
                <th scope="col">State</th>
                <th scope="col">Progress</th>
                <th scope="col">Started</th>
              </tr>
            </thead>
            <tbody>
              {operations.map((op) => (
                <OperationRow key={op.id} op={op} />
              ))}
            </tbody>
          </table>
        </div>
      </ListStatus>
      <Pager label="Operations pages" paging={paging} nextPageToken={list.data?.nextPageToken} />
    </>
  );
}

function OperationRow({ op }: { op: Operation }) {
  return (
    <tr>
      <td className="mono">
        <Link to={`/operations/${op.id}`}>{op.id.slice(0, 8)}</Link>
      </td>
      <td>{op.kind}</td>
      <td className="mono">{op.resource}</td>
      <td>{operationStateLabel(op.state)}</td>
      <td>
        <progress max={1} value={op.progress} aria-label={`Progress of ${op.id.slice(0, 8)}`} /> {percent(op.progress)}
      </td>
      <td>{op.createTime ? timestampDate(op.createTime).toLocaleString() : ""}</td>
    </tr>
  );
}
