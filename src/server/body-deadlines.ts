import type { NodeRequest } from "./connect-handler.js";

/** When the last piece of each streamed body was read (see streamingBody), by request (HTTP/1.1) or stream (HTTP/2). */
const lastPiece = new WeakMap<object, number>();

/** What a body's deadline is kept by: the HTTP/2 stream of a request, or the HTTP/1.1 request itself. */
function keyOf(req: NodeRequest): object {
  return "stream" in req ? req.stream : req;
}

/**
 * Tells the listener that a route reads this request's body as a stream,
 * piece by piece as it arrives, and that a piece was just read. Call it for
 * every piece, and only once the caller is authenticated: from then on the
 * body is not bound by the whole-request deadline (ANVIL_REQUEST_TIMEOUT_MS)
 * but by the time between two pieces (ANVIL_BODY_IDLE_TIMEOUT_MS), as
 * nginx's `client_body_timeout` bounds the time between two reads. A
 * 100 MiB artifact sent slowly but steadily then arrives whole; a body that
 * stalls is still cut, and any body nobody streams (JSON, protobuf, an
 * anonymous caller's) keeps the deadline that stops slowloris clients.
 */
export function streamingBody(req: NodeRequest): void {
  lastPiece.set(keyOf(req), performance.now());
}

/** Options of BodyDeadlines. */
export interface BodyDeadlinesOptions {
  /** How long a request may take from its start until its body is complete (ANVIL_REQUEST_TIMEOUT_MS). */
  readonly requestTimeoutMs: number;
  /** How long a streamed body may go without a piece being read (ANVIL_BODY_IDLE_TIMEOUT_MS). */
  readonly bodyIdleTimeoutMs: number;
}

interface Pending {
  readonly started: number;
  /** Whether the body has arrived whole (or the request is gone). */
  readonly done: () => boolean;
  /** Refuses the late request: 408 and a closed connection (HTTP/1.1), a CANCEL reset (HTTP/2). */
  readonly cut: () => void;
}

/**
 * The deadlines of request bodies still arriving, swept a tenth of the
 * shorter limit apart (at most once a second, at least every 10 ms). Node
 * bounds only whole HTTP/1.1 requests (its `requestTimeout`, which nothing
 * can lift for one request) and HTTP/2 not at all; this bounds both alike,
 * with the streamed-body exception of `streamingBody`.
 */
export class BodyDeadlines {
  readonly #options: BodyDeadlinesOptions;
  readonly #sweepEveryMs: number;
  readonly #pending = new Map<object, Pending>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(options: BodyDeadlinesOptions) {
    this.#options = options;
    this.#sweepEveryMs = Math.max(10, Math.min(1_000, Math.floor(Math.min(options.requestTimeoutMs, options.bodyIdleTimeoutMs) / 10)));
  }

  /** Watches the body of `key` (an HTTP/2 stream or an HTTP/1.1 request) from now. */
  track(key: object, done: () => boolean, cut: () => void): void {
    this.#pending.set(key, { started: performance.now(), done, cut });
    this.#sweep ??= setInterval(() => this.#cutLate(), this.#sweepEveryMs).unref();
  }

  /** Stops watching `key` (its body arrived whole, or it is gone). */
  forget(key: object): void {
    this.#pending.delete(key);
  }

  #cutLate(): void {
    const now = performance.now();
    for (const [key, pending] of this.#pending) {
      if (pending.done()) {
        this.#pending.delete(key);
        continue;
      }
      const last = lastPiece.get(key);
      const due = last === undefined ? pending.started + this.#options.requestTimeoutMs : last + this.#options.bodyIdleTimeoutMs;
      if (due > now) continue;
      this.#pending.delete(key);
      pending.cut();
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }
}
