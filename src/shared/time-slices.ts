import { setImmediate as nextTurn } from "node:timers/promises";
import { performance } from "node:perf_hooks";

/** How long a batch may keep the event loop before letting other requests in. */
export const sliceMs = 10;

/**
 * `items.map(fn)` for work whose total may be long (a batch of a thousand
 * requests): it runs in slices of about `sliceMs` and yields to the event
 * loop between them, so health checks and other tenants' calls are served
 * meanwhile. The result is the same as `items.map(fn)`; an error thrown by
 * `fn` rejects the promise and stops the work.
 *
 * @example
 * const fingerprinted = await mapInSlices(inputs, (input) => ({ ...input, fingerprint: fingerprintOf(input) }));
 */
export async function mapInSlices<T, R>(items: readonly T[], fn: (item: T, index: number) => R, maxSliceMs = sliceMs): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let sliceStart = performance.now();
  for (let i = 0; i < items.length; i++) {
    if (performance.now() - sliceStart >= maxSliceMs) {
      await nextTurn();
      sliceStart = performance.now();
    }
    out[i] = fn(items[i]!, i);
  }
  return out;
}
