import type { RangeRequest } from "../../artifacts/artifact.js";

/** A single byte range of an HTTP `Range` header, as a download request's fields. */
export type RequestedRange = RangeRequest;

/**
 * The one range of `Range: bytes=a-b`, `bytes=a-` or `bytes=-n`; undefined
 * for anything else (several ranges, other units, bad syntax), which RFC 9110
 * lets a server answer with the whole representation.
 *
 * @example parseByteRange("bytes=0-99") // { offset: 0, limit: 100, suffixBytes: 0 }
 */
export function parseByteRange(header: string): RequestedRange | undefined {
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (m === null) return undefined;
  const [first, last] = [m[1]!, m[2]!];
  if (first === "" && last === "") return undefined;
  if (first === "") return Number(last) === 0 ? undefined : { offset: 0, limit: 0, suffixBytes: Number(last) };
  const offset = Number(first);
  if (last === "") return { offset, limit: 0, suffixBytes: 0 };
  if (Number(last) < offset) return undefined;
  return { offset, limit: Number(last) - offset + 1, suffixBytes: 0 };
}
