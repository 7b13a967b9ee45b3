import type { Timestamp } from "@bufbuild/protobuf/wkt";

/**
 * A request's Timestamp as the Date the domain works with, truncated to the millisecond. protobuf-es's
 * `timestampDate` rounds the nanoseconds up, so the largest Timestamp there is (9999-12-31T23:59:59.999999999Z)
 * became a Date in the year 10000, which the embedded database's driver cannot even send (INTERNAL instead of an
 * answer). Truncating keeps every valid Timestamp within its range and never moves a bound past what was asked.
 */
export function dateOfTimestamp(t: Timestamp): Date {
  return new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1_000_000));
}

/** An optional Timestamp (a filter bound, an expiry): unset stays undefined. */
export function optionalDate(t: Timestamp | undefined): Date | undefined {
  return t === undefined ? undefined : dateOfTimestamp(t);
}
