import { useState } from "react";

/**
 * Keyset paging over a List RPC: the token of every page seen so far is kept
 * so that "Previous page" goes back without offsets. `reset()` when the
 * filters change, since a token is only valid for the query that issued it.
 */
export function usePageTokens() {
  const [tokens, setTokens] = useState<string[]>([""]);
  return {
    pageToken: tokens[tokens.length - 1] ?? "",
    page: tokens.length,
    previous: () => setTokens((t) => (t.length > 1 ? t.slice(0, -1) : t)),
    next: (token: string) => setTokens((t) => [...t, token]),
    reset: () => setTokens([""]),
  };
}

/** Previous / next page buttons for usePageTokens, with the page number between them. */
export function Pager({ label, paging, nextPageToken }: { label: string; paging: ReturnType<typeof usePageTokens>; nextPageToken: string | undefined }) {
  return (
    <nav className="pager" aria-label={label}>
      <button type="button" disabled={paging.page === 1} onClick={paging.previous}>
        Previous page
      </button>
      <span>Page {paging.page}</span>
      <button type="button" disabled={!nextPageToken} onClick={() => nextPageToken && paging.next(nextPageToken)}>
        Next page
      </button>
    </nav>
  );
}
