import { useQuery } from "@connectrpc/connect-query";
import { type FormEvent, useEffect, useId, useState } from "react";
import { type OidcSignIn, SignInService } from "../../../gen/anvil/identity/v1/identity_pb.js";
import { ErrorMessage } from "../errors.js";
import { callbackPath, finishSingleSignOn, startSingleSignOn } from "../single-sign-on.js";
import { navigate, usePath } from "../router.js";
import { signIn } from "../session.js";

/**
 * Sign-in: single sign-on with the gateway's OpenID provider when it offers
 * one (SignInService.GetSignInOptions), or pasting an API key (`anvil_…`) or a
 * bearer token. Either way the credential stays in this tab's sessionStorage
 * and travels only as the Authorization header.
 */
export function SignIn({ error }: { error?: unknown }) {
  const options = useQuery(SignInService.method.getSignInOptions, {}, { staleTime: Infinity });
  const oidc = options.data?.oidc;
  return (
    <main className="sign-in">
      <h1 tabIndex={-1}>Sign in to Anvil</h1>
      {error !== undefined && <ErrorMessage error={error} />}
      {oidc !== undefined && <SingleSignOn oidc={oidc} />}
      <PasteCredential heading={oidc !== undefined} />
    </main>
  );
}

function SingleSignOn({ oidc }: { oidc: OidcSignIn }) {
  const path = usePath();
  const [failure, setFailure] = useState<unknown>();
  const [leaving, setLeaving] = useState(false);
  const start = () => {
    setLeaving(true);
    setFailure(undefined);
    startSingleSignOn(oidc, path).catch((err: unknown) => {
      setLeaving(false);
      setFailure(err);
    });
  };
  return (
    <section className="sso" aria-label="Single sign-on">
      <button type="button" onClick={start} disabled={leaving}>
        Sign in with single sign-on
      </button>
      <p className="hint">
        You sign in at <span className="mono">{new URL(oidc.issuer).host}</span> and come back here.
      </p>
      {failure !== undefined && <ErrorMessage error={failure} />}
    </section>
  );
}

function PasteCredential({ heading }: { heading: boolean }) {
  const [value, setValue] = useState("");
  const id = useId();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim() !== "") signIn(value);
  };
  return (
    <form onSubmit={submit}>
      {heading && <h2>Or paste an API key or token</h2>}
      <label htmlFor={id}>API key or token</label>
      <input
        id={id}
        type="password"
        autoComplete="off"
        spellCheck={false}
        value={value}
        onChange={(e) => setValue(e.target.value)}
        aria-describedby={`${id}-hint`}
        required
      />
      <p id={`${id}-hint`} className="hint">
        Kept in this tab only (sessionStorage) and sent as a header, never in a URL. Create one with <code>npm run apikey</code> or{" "}
        <code>npm run token</code>.
      </p>
      <button type="submit">Sign in</button>
    </form>
  );
}

/**
 * `/signed-in`, where the provider sends the browser back: exchanges the code
 * for the ID token, signs in with it and goes to the page the sign-in started
 * from. A refusal is shown with a way back to the sign-in page.
 */
export function FinishSignIn() {
  const [failure, setFailure] = useState<unknown>();
  useEffect(() => {
    finishSingleSignOn().then(
      ({ token, returnTo }) => {
        // To the page first, then signed in: the signed-in shell never shows the callback path.
        navigate(returnTo === callbackPath ? "/" : returnTo, { replace: true });
        signIn(token);
      },
      (err: unknown) => setFailure(err),
    );
  }, []);
  if (failure === undefined) return <p className="loading" role="status">Finishing sign-in…</p>;
  return (
    <main className="sign-in">
      <h1 tabIndex={-1}>Sign-in did not finish</h1>
      <ErrorMessage error={failure} />
      <button type="button" onClick={() => navigate("/", { replace: true })}>
        Back to sign-in
      </button>
    </main>
  );
}
