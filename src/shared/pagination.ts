import { InvalidArgumentError } from "./errors.js";

/** Page size when the client sends none. */
export const defaultPageSize = 50;
/** Larger requested page sizes are reduced to this. */
export const maxPageSize = 1000;

/** A request for one page: how many rows, and where the previous page ended. */
export interface PageRequest {
  readonly pageSize: number;
  readonly pageToken: string;
}

/** One page of results and the token for the next (empty on the last page). */
export interface Page<T> {
  readonly items: T[];
  readonly nextPageToken: string;
}

/** Applies the AIP-158 defaults: 0 means the default, larger than the maximum clamps. */
export function effectivePageSize(requested: number): number {
  if (!Number.isInteger(requested) || requested < 0) {
    throw InvalidArgumentError.field("page_size", "must not be negative");
  }
  if (requested === 0) return defaultPageSize;
  return Math.min(requested, maxPageSize);
}

/**
 * Turns `limit + 1` fetched rows into a page: the extra row only tells that
 * another page exists, and the last served row's key becomes the token.
 */
export function toPage<T>(rows: T[], limit: number, tokenAfter: (last: T) => string): Page<T> {
  if (rows.length <= limit) return { items: rows, nextPageToken: "" };
  const items = rows.slice(0, limit);
  return { items, nextPageToken: tokenAfter(items[items.length - 1] as T) };
}
