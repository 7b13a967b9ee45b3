import { useMutation, useQuery } from "@connectrpc/connect-query";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useId, useState } from "react";
import { type ApiKey, ApiKey_State, ApiKeyService } from "../../../gen/anvil/apikeys/v1/apikeys_pb.js";
import { useCan } from "../caller.js";
import { Field } from "../components/field.js";
import { ErrorMessage, errorReport } from "../errors.js";
import { ListStatus } from "../components/list-status.js";
import { Pager, usePageTokens } from "../paging.js";

const stateLabels: Record<ApiKey_State, string> = {
  [ApiKey_State.UNSPECIFIED]: "Unknown",
  [ApiKey_State.ACTIVE]: "Active",
  [ApiKey_State.REVOKED]: "Revoked",
  [ApiKey_State.EXPIRED]: "Expired",
};

/** API keys: the list, revoke, and create — whose secret is shown once, right here, and never again. */
export function ApiKeys() {
  const canManage = useCan("apikeys.manage");
  const paging = usePageTokens();
  const list = useQuery(ApiKeyService.method.listApiKeys, { pageSize: 25, pageToken: paging.pageToken }, { placeholderData: (p) => p });
  const keys = list.data?.apiKeys ?? [];
  return (
    <>
      <h1 tabIndex={-1}>API keys</h1>
      {canManage && <CreateKey />}
      <ListStatus query={list} count={keys.length} loading="Loading API keys…" empty={<>No API keys yet.</>}>
        <table>
          <caption className="visually-hidden">API keys, page {paging.page}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Roles</th>
              <th scope="col">State</th>
              <th scope="col">Created by</th>
              <th scope="col">Last used</th>
              {canManage && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <KeyRow key={k.id} apiKey={k} canManage={canManage} />
            ))}
          </tbody>
        </table>
      </ListStatus>
      <Pager label="API key pages" paging={paging} nextPageToken={list.data?.nextPageToken} />
    </>
  );
}

function CreateKey() {
  const client = useQueryClient();
  const [name, setName] = useState("");
  const [roles, setRoles] = useState("viewer");
  const create = useMutation(ApiKeyService.method.createApiKey, { onSuccess: () => void client.invalidateQueries() });
  const report = create.isError ? errorReport(create.error) : undefined;
  const id = useId();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({ apiKey: { displayName: name, roles: roles.split(",").map((r) => r.trim()).filter((r) => r !== "") } });
  };
  return (
    <section aria-labelledby={`${id}-heading`}>
      <h2 id={`${id}-heading`}>Create an API key</h2>
      <form className="filters" onSubmit={submit} aria-label="Create an API key">
        <Field label="Key name" path="api_key.display_name" report={report} value={name} onChange={(e) => setName(e.target.value)} placeholder="ci" />
        <Field label="Roles" path="api_key.roles" report={report} value={roles} onChange={(e) => setRoles(e.target.value)} placeholder="viewer, analyzer" />
        <div className="actions">
          <button type="submit" disabled={create.isPending}>
            Create key
          </button>
        </div>
      </form>
      {create.isError && <ErrorMessage error={create.error} />}
      {create.data?.secret && (
        <div className="secret" role="status" aria-labelledby={`${id}-secret`}>
          <p id={`${id}-secret`}>
            <strong>Copy the secret of “{create.data.apiKey?.displayName}” now: it is shown this once and never again.</strong>
          </p>
          <code data-testid="api-key-secret">{create.data.secret}</code>{" "}
          <button type="button" className="secondary" onClick={() => void navigator.clipboard?.writeText(create.data.secret)}>
            Copy
          </button>{" "}
          <button type="button" className="secondary" onClick={() => create.reset()}>
            I have copied it
          </button>
        </div>
      )}
    </section>
  );
}

function KeyRow({ apiKey, canManage }: { apiKey: ApiKey; canManage: boolean }) {
  const client = useQueryClient();
  const revoke = useMutation(ApiKeyService.method.revokeApiKey, { onSuccess: () => void client.invalidateQueries() });
  return (
    <tr>
      <td>{apiKey.displayName}</td>
      <td>{apiKey.roles.join(", ")}</td>
      <td>{stateLabels[apiKey.state]}</td>
      <td className="mono">{apiKey.creator}</td>
      <td>{apiKey.lastUsedTime ? timestampDate(apiKey.lastUsedTime).toLocaleString() : "Never"}</td>
      {canManage && (
        <td>
          {apiKey.state === ApiKey_State.ACTIVE && (
            <button type="button" className="secondary" disabled={revoke.isPending} onClick={() => revoke.mutate({ id: apiKey.id, etag: apiKey.etag })}>
              Revoke {apiKey.displayName}
            </button>
          )}
          {revoke.isError && <ErrorMessage error={revoke.error} />}
        </td>
      )}
    </tr>
  );
}
