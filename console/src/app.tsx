import { Code, ConnectError } from "@connectrpc/connect";
import { Caller_CredentialKind } from "../../gen/anvil/identity/v1/identity_pb.js";
import { Can, CallerProvider, useCallerQuery } from "./caller.js";
import { ErrorMessage } from "./errors.js";
import { AgentPage } from "./pages/agent.js";
import { Agents } from "./pages/agents.js";
import { ApiKeys } from "./pages/api-keys.js";
import { AuditLog } from "./pages/audit.js";
import { Dashboard } from "./pages/dashboard.js";
import { OperationPage } from "./pages/operation.js";
import { IpaPage } from "./pages/ipa.js";
import { Ipas } from "./pages/ipas.js";
import { Operations } from "./pages/operations.js";
import { Users } from "./pages/users.js";
import { WorkflowPage } from "./pages/workflow.js";
import { Workflows } from "./pages/workflows.js";
import { FinishSignIn, SignIn } from "./pages/sign-in.js";
import { callbackPath } from "./single-sign-on.js";
import { Link, usePath } from "./router.js";
import { signOut, useCredential } from "./session.js";

const kinds: Record<Caller_CredentialKind, string> = {
  [Caller_CredentialKind.UNSPECIFIED]: "credential",
  [Caller_CredentialKind.API_KEY]: "API key",
  [Caller_CredentialKind.SERVICE_ACCOUNT]: "service-account token",
  [Caller_CredentialKind.OIDC]: "single sign-on",
};

/** Signed out: the sign-in page. Signed in: the shell with who is signed in, the navigation and the page. */
export function App() {
  const credential = useCredential();
  const path = usePath();
  if (credential === undefined) return path === callbackPath ? <FinishSignIn /> : <SignIn />;
  return <SignedIn />;
}

function SignedIn() {
  const caller = useCallerQuery();
  if (caller.isPending) return <p className="loading" role="status">Checking your credential…</p>;
  if (caller.isError) {
    // A refused credential: the sign-in page says why, and the next paste replaces it.
    return <SignIn error={caller.error} />;
  }
  const me = caller.data.caller!;
  return (
    <CallerProvider caller={me}>
      <a className="skip" href="#content">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Anvil console</span>
        <nav aria-label="Main">
          <Link to="/">Findings</Link>
          <Link to="/operations">Operations</Link>
          <Link to="/workflows">Workflows</Link>
          <Link to="/agents">Agents</Link>
          <Link to="/ipas">IPAs</Link>
          <Can permission="apikeys.manage">
            <Link to="/api-keys">API keys</Link>
          </Can>
          <Can permission="users.read">
            <Link to="/users">Users</Link>
          </Can>
          <Can permission="audit.read">
            <Link to="/audit">Audit log</Link>
          </Can>
        </nav>
        <section className="who" aria-label="Signed in">
          <span>
            Signed in as <strong>{me.subject}</strong> ({kinds[me.credentialKind]})
          </span>
          <span>
            Tenant <strong>{me.tenant}</strong>
          </span>
          <span>
            Roles <strong>{me.roles.join(", ") || "none"}</strong>
          </span>
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </section>
      </header>
      <Page />
    </CallerProvider>
  );
}

/** The page for a console path; unknown paths say so. */
function route(path: string) {
  if (path === "/") return <Dashboard />;
  if (path === "/operations") return <Operations />;
  const operation = /^\/operations\/([0-9a-f-]{36})$/.exec(path);
  if (operation) return <OperationPage key={operation[1]} id={operation[1]!} />;
  if (path === "/workflows") return <Workflows />;
  if (path === "/agents") return <Agents />;
  if (path === "/ipas") return <Ipas />;
  if (path === "/api-keys") return <ApiKeys />;
  if (path === "/audit") return <AuditLog />;
  if (path === "/users") return <Users />;
  if (path === "/workflows/new") return <WorkflowPage key="new" id={undefined} />;
  const workflow = /^\/workflows\/([0-9a-f-]{36})$/.exec(path);
  if (workflow) return <WorkflowPage key={workflow[1]} id={workflow[1]!} />;
  const agent = /^\/agents\/([0-9a-f-]{36})$/.exec(path);
  if (agent) return <AgentPage key={agent[1]} id={agent[1]!} />;
  const ipa = /^\/ipas\/([0-9a-f-]{36})$/.exec(path);
  if (ipa) return <IpaPage key={ipa[1]} id={ipa[1]!} />;
  return undefined;
}

function Page() {
  const path = usePath();
  const page = route(path);
  return (
    <main id="content">
      {page ?? (
        <>
          <h1 tabIndex={-1}>Page not found</h1>
          <ErrorMessage error={new ConnectError(`No console page at ${path}`, Code.NotFound)} />
          <Link to="/">Go to the findings dashboard</Link>
        </>
      )}
    </main>
  );
}
