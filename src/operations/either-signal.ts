/**
 * A signal that aborts when either of two does, and a dispose() that
 * unhooks it — unlike AbortSignal.any, nothing stays registered on the
 * long-lived signal once the call is over.
 */
export function eitherSignal(a: AbortSignal, b: AbortSignal): { readonly signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const abort = () => controller.abort();
  if (a.aborted || b.aborted) abort();
  a.addEventListener("abort", abort, { once: true });
  b.addEventListener("abort", abort, { once: true });
  return {
    signal: controller.signal,
    dispose: () => {
      a.removeEventListener("abort", abort);
      b.removeEventListener("abort", abort);
    },
  };
}
