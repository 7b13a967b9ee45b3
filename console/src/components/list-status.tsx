import type { ReactNode } from "react";
import { ErrorMessage } from "../errors.js";

/**
 * The states every list page has, designed once: the server's error, a
 * loading line announced to screen readers, an empty state that says what
 * would appear here, and otherwise the list itself.
 */
export function ListStatus({
  query,
  count,
  loading,
  empty,
  children,
}: {
  query: { isError: boolean; error: unknown; isPending: boolean };
  count: number;
  loading: string;
  empty: ReactNode;
  children: ReactNode;
}) {
  return (
    <>
      {query.isError && <ErrorMessage error={query.error} />}
      {query.isPending ? <p role="status">{loading}</p> : count === 0 ? <p className="empty">{empty}</p> : children}
    </>
  );
}
