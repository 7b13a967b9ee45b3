import { type FormEvent, useId, useState } from "react";
import { ErrorMessage } from "../errors.js";
import { signIn } from "../session.js";

/**
 * Sign-in by pasting an API key (`anvil_…`) or a bearer token. The value stays
 * in this tab's sessionStorage and travels only as the Authorization header.
 */
export function SignIn({ error }: { error?: unknown }) {
  const [value, setValue] = useState("");
  const id = useId();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim() !== "") signIn(value);
  };
  return (
    <main className="sign-in">
      <h1 tabIndex={-1}>Sign in to Anvil</h1>
      {error !== undefined && <ErrorMessage error={error} />}
      <form onSubmit={submit}>
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
          Kept in this tab only (sessionStorage) and sent as a header, never in a URL. Create one with{" "}
          <code>npm run apikey</code> or <code>npm run token</code>.
        </p>
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}
