import { Code, type ConnectError } from "@connectrpc/connect";
import type { UseQueryResult } from "@tanstack/react-query";
import { Fragment, type ReactNode, useState } from "react";
import { ErrorMessage, errorReport } from "../errors.js";

/** Query options for a resource loaded into a form: read once, so that someone else's later change is a conflict at save, not a silent swap. */
export const loadOnce = { staleTime: Infinity, refetchOnWindowFocus: false } as const;

/**
 * A resource loaded for editing: its title and the server's error, a loading
 * state, or the editor from `children`. `reload` refetches it and starts the
 * editor afresh from the latest version (after a conflict); a refetch alone,
 * after a save of ours, leaves the form and its messages as they are.
 */
export function Loaded<T>({
  query,
  title,
  loading,
  children,
}: {
  query: UseQueryResult<T, ConnectError>;
  title: string;
  loading: string;
  children: (data: T, reload: () => void) => ReactNode;
}) {
  const [generation, setGeneration] = useState(0);
  if (query.isError)
    return (
      <>
        <h1 tabIndex={-1}>{title}</h1>
        <ErrorMessage error={query.error} />
      </>
    );
  if (query.isPending) return <p role="status">{loading}</p>;
  const reload = () => void query.refetch().then(() => setGeneration((g) => g + 1));
  return <Fragment key={generation}>{children(query.data, reload)}</Fragment>;
}

/**
 * What a save (or another etag-guarded change) ended in: the server's error,
 * and for ABORTED — someone else changed it meanwhile — a way to load the
 * latest version; or `saved` once it went through.
 */
export function SaveOutcome({ error, saved, reload }: { error: ConnectError | null; saved: string | undefined; reload: () => void }) {
  return (
    <>
      {error !== null && <ErrorMessage error={error} />}
      {error !== null && errorReport(error).code === Code.Aborted && (
        <button type="button" className="secondary" onClick={reload}>
          Load the latest version (discards your changes)
        </button>
      )}
      {error === null && saved !== undefined && <p role="status">{saved}</p>}
    </>
  );
}
