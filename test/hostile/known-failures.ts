// Failures the fuzzer has found that are being fixed elsewhere, so that the
// suite stays green meanwhile. One entry per failure: the method, the input
// class that triggers it, the property it breaks, why, and who owns the fix.
// Remove an entry when its fix lands (the fuzz run reports entries that were
// never hit, which is the hint that one can go). Keep entries narrow: an
// entry that matches everything hides the next bug.

/** The properties the fuzzer checks. */
export type FuzzProperty =
  /** INTERNAL, UNKNOWN or DATA_LOSS, or an HTTP 5xx other than 503 (UNAVAILABLE). */
  | "code"
  /** No answer within the time bound. */
  | "slow"
  /** The event loop was blocked longer than 50 ms + 20 ms per MiB of body. */
  | "event-loop"
  /** The answer is not a well-formed response of its protocol (no status, dropped connection). */
  | "protocol";

/** One tolerated failure. */
export interface KnownFailure {
  /** `package.Service/Method`, or `*` for every method. */
  readonly method: string;
  /** An input class tag the request must carry (matched against the end of each tag, e.g. `string:invalid-utf8`). */
  readonly inputClass: string;
  readonly property: FuzzProperty;
  /** Protocols it shows on; all when absent. */
  readonly protocols?: readonly string[];
  readonly reason: string;
  /** The helper or issue that fixes it. */
  readonly owner: string;
}

export const knownFailures: readonly KnownFailure[] = [];

/** The entry that tolerates a failure, if any. */
export function knownFailureFor(method: string, tags: readonly string[], property: FuzzProperty, protocol: string): KnownFailure | undefined {
  return knownFailures.find(
    (k) =>
      (k.method === "*" || k.method === method) &&
      k.property === property &&
      (!k.protocols || k.protocols.includes(protocol)) &&
      tags.some((t) => t === k.inputClass || t.endsWith(`:${k.inputClass}`)),
  );
}
