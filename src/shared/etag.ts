import { AbortedError, InvalidArgumentError } from "./errors.js";

/**
 * Etags are derived from a row's version counter, which every write bumps.
 * They are opaque to clients: only equality with the stored one matters.
 */
export function etagOf(version: number): string {
  return `"v${version}"`;
}

/**
 * The version an etag stands for, or undefined when no etag was sent. An
 * etag this server never issued cannot match any row, so it is ABORTED like
 * any other stale etag, and nothing is written.
 */
export function expectedVersion(etag: string | undefined): number | undefined {
  if (etag === undefined || etag === "") return undefined;
  const match = /^"v([1-9][0-9]{0,14})"$/.exec(etag);
  if (!match) throw staleEtag();
  const version = Number(match[1]);
  // Versions are 32-bit columns: a larger one was never issued, and must not
  // reach the database as a parameter it cannot hold (an INTERNAL error there).
  if (version > maxVersion) throw InvalidArgumentError.field("etag", `names version ${match[1]}, beyond any version this server issues`);
  return version;
}

/** The largest version a row can carry (PostgreSQL `integer`). */
export const maxVersion = 2_147_483_647;

/** The error for an etag that differs from the stored one. */
export function staleEtag(): AbortedError {
  return new AbortedError("etag does not match the current version; re-read and retry");
}
