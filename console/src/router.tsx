import { type AnchorHTMLAttributes, type MouseEvent, useSyncExternalStore } from "react";

/**
 * A few lines of history routing under /console: the gateway serves index.html
 * for every path below it (src/server/console-route.ts), so deep links and
 * reloads work. No router dependency for a handful of pages.
 */
export const basePath = "/console";
const listeners = new Set<() => void>();
addEventListener("popstate", () => listeners.forEach((l) => l()));

/** The path below /console, e.g. `/operations/abc` (`/` for the dashboard). */
export function usePath(): string {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => location.pathname.slice(basePath.length) || "/",
  );
}

/** Goes to a console path without reloading; `replace` leaves no history entry for the page it leaves. */
export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (options.replace === true) history.replaceState(null, "", basePath + path);
  else history.pushState(null, "", basePath + path);
  listeners.forEach((l) => l());
  // The new page's heading takes focus so that keyboard and screen-reader users land on it.
  queueMicrotask(() => document.querySelector<HTMLElement>("main h1")?.focus());
}

/** An ordinary link (open in a new tab works) that navigates in place on a plain click. */
export function Link({ to, ...rest }: { to: string } & AnchorHTMLAttributes<HTMLAnchorElement>) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
  };
  const current = usePath() === to;
  return <a href={basePath + to} onClick={onClick} aria-current={current ? "page" : undefined} {...rest} />;
}
