/**
 * The longest delay Node's timers and PostgreSQL's `statement_timeout`
 * accept: 2^31 − 1 ms, about 24.8 days. A longer timer fires at once (Node
 * warns and uses 1 ms) and a longer statement_timeout is an error, so a
 * client deadline beyond it is clamped to it — which no call outlives.
 */
export const maxTimerMs = 2_147_483_647;

/** `ms` clamped to what a timer can wait; undefined stays undefined (no deadline). */
export function clampTimerMs(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.min(ms, maxTimerMs);
}
