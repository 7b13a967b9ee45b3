/** How the task queue retries: from the gateway's configuration. */
export interface QueueSettings {
  /** Attempts a task gets (claims, lease expiries included) before its operation fails. */
  readonly maxAttempts: number;
  /** Delay before the first retry; doubled for each later one. */
  readonly retryBaseMs: number;
  /** Longest delay between retries. */
  readonly retryMaxMs: number;
}

/** Exponential backoff: the delay before retrying after failed attempt `attempt` (1, 2, …). */
export function retryDelayMs(settings: QueueSettings, attempt: number): number {
  return Math.min(settings.retryMaxMs, settings.retryBaseMs * 2 ** Math.max(0, attempt - 1));
}
