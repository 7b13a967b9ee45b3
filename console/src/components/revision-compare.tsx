import { useQuery } from "@connectrpc/connect-query";
import { useId, useState } from "react";
import { WorkflowService } from "../../../gen/anvil/workflows/v1/workflows_pb.js";
import { ErrorMessage } from "../errors.js";
import { diffRevisions } from "../revision-diff.js";

/**
 * A workflow's revisions side by side (WorkflowService.ListWorkflowRevisions):
 * pick two, see each field and step of both with what changed, in words.
 * Starts with the revision before the current one against the current one.
 */
export function RevisionCompare({ id }: { id: string }) {
  const revisions = useQuery(WorkflowService.method.listWorkflowRevisions, { id, pageSize: 100 });
  const [picked, setPicked] = useState<{ older?: number; newer?: number }>({});
  const selectId = useId();
  if (revisions.isPending) return <p role="status">Loading revisions…</p>;
  if (revisions.isError) return <ErrorMessage error={revisions.error} />;
  // Newest first, as the server lists them.
  const all = revisions.data.revisions;
  if (all.length < 2) return <p className="empty">Only one revision so far: saving a change makes a new one to compare with.</p>;
  const olderRevision = picked.older ?? all[1]!.revision;
  const newerRevision = picked.newer ?? all[0]!.revision;
  const older = all.find((w) => w.revision === olderRevision)!;
  const newer = all.find((w) => w.revision === newerRevision)!;
  const rows = diffRevisions(older, newer);
  const changed = rows.filter((r) => r.change !== "Unchanged").length;
  const picker = (side: "older" | "newer", label: string, value: number) => (
    <div className="field">
      <label htmlFor={`${selectId}-${side}`}>{label}</label>
      <select id={`${selectId}-${side}`} value={value} onChange={(e) => setPicked({ ...picked, [side]: Number(e.target.value) })}>
        {all.map((w) => (
          <option key={w.revision} value={w.revision}>
            Revision {w.revision}
            {w.revision === all[0]!.revision ? " (current)" : ""}
          </option>
        ))}
      </select>
    </div>
  );
  return (
    <>
      <div className="filters">
        {picker("older", "Compare revision", olderRevision)}
        {picker("newer", "with revision", newerRevision)}
      </div>
      <p role="status">{changed === 0 ? "No differences." : `${changed} ${changed === 1 ? "difference" : "differences"}.`}</p>
      <table className="revision-diff">
        <caption className="visually-hidden">
          Revision {older.revision} compared with revision {newer.revision}
        </caption>
        <thead>
          <tr>
            <th scope="col">Field</th>
            <th scope="col">Revision {older.revision}</th>
            <th scope="col">Revision {newer.revision}</th>
            <th scope="col">Change</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.label} className={`change-${r.change.toLowerCase()}`}>
              <th scope="row">{r.label}</th>
              <td className="mono">{r.older ?? "—"}</td>
              <td className="mono">{r.newer ?? "—"}</td>
              <td>{r.change}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
