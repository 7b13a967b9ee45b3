import { useQuery } from "@connectrpc/connect-query";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { WorkflowService } from "../../../gen/anvil/workflows/v1/workflows_pb.js";
import { Can } from "../caller.js";
import { ListStatus } from "../components/list-status.js";
import { Pager, usePageTokens } from "../paging.js";
import { Link } from "../router.js";
import { workflowStateLabel } from "../workflows.js";

/** The tenant's workflows, a page at a time, with "New workflow" for those who may write them. */
export function Workflows() {
  const paging = usePageTokens();
  const list = useQuery(WorkflowService.method.listWorkflows, { pageSize: 25, pageToken: paging.pageToken }, { placeholderData: (p) => p });
  const workflows = list.data?.workflows ?? [];
  return (
    <>
      <div className="section-head">
        <h1 tabIndex={-1}>Workflows</h1>
        <Can permission="workflows.write">
          <Link to="/workflows/new" className="button">
            New workflow
          </Link>
        </Can>
      </div>
      <ListStatus query={list} count={workflows.length} loading="Loading workflows…" empty={<>No workflows yet. A workflow is a list of steps that workers carry out.</>}>
        <table>
          <caption className="visually-hidden">Workflows, page {paging.page}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">State</th>
              <th scope="col">Revision</th>
              <th scope="col">Steps</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {workflows.map((w) => (
              <tr key={w.id}>
                <td>
                  <Link to={`/workflows/${w.id}`}>{w.displayName}</Link>
                </td>
                <td>{workflowStateLabel(w.state)}</td>
                <td>{w.revision}</td>
                <td>{w.steps.length}</td>
                <td>{w.updateTime ? timestampDate(w.updateTime).toLocaleString() : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ListStatus>
      <Pager label="Workflow pages" paging={paging} nextPageToken={list.data?.nextPageToken} />
    </>
  );
}
