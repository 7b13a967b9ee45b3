/**
 * What every server, load generator and check needs to know about the data
 * a run prepared: who calls, which user a point read asks for, where the deep
 * list page starts. Plain JSON, because it is handed to child processes.
 */
export interface BenchContext {
  /** Bearer token of an admin of `tenant`, sent on every RPC (peers ignore it). */
  readonly token: string;
  /** An admin API key of `tenant` (`anvil_…`), for the credentials workload. */
  readonly apiKey: string;
  /** An RS256 token of the bench's OpenID issuer for an admin of `tenant`, for the credentials workload. */
  readonly oidcToken: string;
  readonly tenant: string;
  /** The user every point read asks for, and its e-mail (checked in every answer). */
  readonly userId: string;
  readonly userEmail: string;
  /** A page token deep in the keyset (about 90% of the seeded rows behind it). */
  readonly pageToken: string;
  /** Id of the first user of that page, checked in every list answer. */
  readonly pageFirstId: string;
  /** Rows per list page. */
  readonly pageSize: number;
  /** The workflow the operations workload runs: one step of kind `bench`. */
  readonly workflowId: string;
}

/** Reads the context a parent process put in BENCH_CONTEXT. */
export function contextFromEnv(env: NodeJS.ProcessEnv = process.env): BenchContext {
  const raw = env.BENCH_CONTEXT;
  if (!raw) throw new Error("BENCH_CONTEXT is not set");
  return JSON.parse(raw) as BenchContext;
}
