import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { User_State, UserService } from "../../../gen/anvil/users/v1/users_pb.js";
import { useCan } from "../caller.js";
import { Field } from "../components/field.js";
import { ErrorMessage, errorReport } from "../errors.js";
import { ListStatus } from "../components/list-status.js";
import { Pager, usePageTokens } from "../paging.js";

/** The tenant's users (admins: `users.read`), and adding one for `users.write`. */
export function Users() {
  const canWrite = useCan("users.write");
  const paging = usePageTokens();
  const list = useQuery(UserService.method.listUsers, { pageSize: 25, pageToken: paging.pageToken }, { placeholderData: (p) => p });
  const users = list.data?.users ?? [];
  return (
    <>
      <h1 tabIndex={-1}>Users</h1>
      {canWrite && <CreateUser />}
      <ListStatus query={list} count={users.length} loading="Loading users…" empty={<>No users yet.</>}>
        <table>
          <caption className="visually-hidden">Users, page {paging.page}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">E-mail</th>
              <th scope="col">Roles</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <tr key={u.id}>
                <td>{u.displayName || "—"}</td>
                <td>{u.email}</td>
                <td>{u.roles.join(", ")}</td>
                <td>{u.state === User_State.DISABLED ? "Disabled" : "Active"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ListStatus>
      <Pager label="User pages" paging={paging} nextPageToken={list.data?.nextPageToken} />
    </>
  );
}

function CreateUser() {
  const client = useQueryClient();
  const [draft, setDraft] = useState({ email: "", displayName: "", roles: "viewer" });
  const create = useMutation(UserService.method.createUser, { onSuccess: () => void client.invalidateQueries() });
  const report = create.isError ? errorReport(create.error) : undefined;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const roles = draft.roles.split(",").map((r) => r.trim()).filter((r) => r !== "");
    create.mutate({ user: { email: draft.email, displayName: draft.displayName, roles } });
  };
  return (
    <section aria-label="Add a user">
      <h2>Add a user</h2>
      <form className="filters" onSubmit={submit} aria-label="New user">
        <Field label="E-mail" path="user.email" report={report} value={draft.email} onChange={(e) => setDraft({ ...draft, email: e.target.value })} />
        <Field label="Display name" path="user.display_name" report={report} value={draft.displayName} onChange={(e) => setDraft({ ...draft, displayName: e.target.value })} />
        <Field label="User roles" path="user.roles" report={report} value={draft.roles} onChange={(e) => setDraft({ ...draft, roles: e.target.value })} />
        <div className="actions">
          <button type="submit" disabled={create.isPending}>
            Add user
          </button>
        </div>
      </form>
      {create.isError && <ErrorMessage error={create.error} />}
      {create.isSuccess && <p role="status">Added {create.data.user?.email}.</p>}
    </section>
  );
}
