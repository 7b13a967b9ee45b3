import type { DescMethodServerStreaming } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Logger } from "pino";
import type { RawData, WebSocket } from "ws";
import type { WatchOperationResponse } from "../../../gen/anvil/operations/v1/operations_pb.js";
import type { WebSocketLimits } from "../../config.js";
import type { CallObserver, ObservedCall } from "../call-observer.js";
import { toConnectError } from "../../rpc/error-mapping.js";
import { UnauthenticatedError } from "../../shared/errors.js";
import { takeQueryCredential } from "../query-credential.js";
import { type WatchSocketMessage, WatchSocketMessages } from "./watch-socket-messages.js";

/** What a socket hands over to start its WatchOperation call, once its credential is known. */
export interface WatchCallInit {
  /** The upgrade request's headers, with the credential (from the query or the auth message) as its header. */
  readonly headers: IncomingHttpHeaders;
  /** The query, credential parameters taken out. */
  readonly query: URLSearchParams;
  /** The URL with credentials redacted: what interceptors and logs see. */
  readonly redactedUrl: string;
  /** Aborts when the socket closes (the client left, or the server closed it). */
  readonly signal: AbortSignal;
  /** The call's context values (request id set by its observation), for the interceptors. */
  readonly values: ContextValues;
}

/** What every socket of the route shares. */
export interface WatchSocketSettings {
  readonly method: DescMethodServerStreaming;
  readonly limits: WebSocketLimits;
  readonly pingMs: number;
  readonly calls: CallObserver;
  readonly log: Logger;
}

/**
 * Close codes, each saying why (README: "WebSocket"): the standard ones
 * where one fits, and 4000 + the HTTP status otherwise.
 */
export const closeCodes = {
  completed: 1000,
  goingAway: 1001,
  policy: 1008, // authentication or permission
  tooBig: 1009,
  internal: 1011,
  tryAgainLater: 1013, // the credential's stream cap, or the database unavailable
  invalid: 4400,
  notFound: 4404,
  deadline: 4408,
  slowConsumer: 4429,
} as const;

/** Raised when the client leaves its send buffer over the bound for too long. */
class SlowConsumer extends Error {}

/**
 * One WebSocket watch: resolves the caller's credential (the `Authorization`
 * or `x-api-key` header, an `access_token` or `api_key` query parameter, or
 * a first `{"type":"auth"}` message within `authTimeoutMs`), runs the
 * WatchOperation call, sends one typed message per event, and closes with
 * the code of how it ended. Pings every `pingMs`; a client that has not
 * answered the previous ping is cut off (judged only once what it sent has
 * been read, so the server's own delays never count against it). Sends are counted until the
 * socket has written them: over `sendBufferBytes` the watch stops pulling
 * events (which wait in the database, not in memory), and a client that
 * does not take them within `slowConsumerMs` is closed with 4429.
 */
export class WatchSocket {
  readonly #ws: WebSocket;
  readonly #req: IncomingMessage;
  readonly #settings: WatchSocketSettings;
  readonly #start: (init: WatchCallInit) => Promise<AsyncIterable<WatchOperationResponse>>;
  readonly #abort = new AbortController();
  readonly #meter: ObservedCall;
  #pending = 0;
  #room: (() => void) | undefined;
  #goingAway = false;

  constructor(ws: WebSocket, req: IncomingMessage, settings: WatchSocketSettings, start: (init: WatchCallInit) => Promise<AsyncIterable<WatchOperationResponse>>) {
    this.#ws = ws;
    this.#req = req;
    this.#settings = settings;
    this.#start = start;
    this.#meter = settings.calls.begin(settings.method, "websocket", req, "GET /ws/operations/{id}");
    ws.once("close", () => {
      this.#abort.abort(new ConnectError("client disconnected", Code.Canceled));
      this.#room?.();
    });
    // Errors (a malformed frame, a message over maxPayload) close the socket with their own code; 'close' follows.
    ws.on("error", (err) => settings.log.debug({ err }, "websocket error"));
  }

  /** Serves the socket until it closes. Never throws. */
  async run(): Promise<void> {
    let alive = true;
    this.#ws.on("pong", () => {
      alive = true;
    });
    // Each ping is judged once, a full interval after it was sent (not by a fixed-rate interval, whose ticks
    // bunch up behind a stalled loop and would judge a ping sent a moment before), and after pending input.
    let next: NodeJS.Timeout;
    const heartbeat = () => {
      if (this.#ws.readyState !== this.#ws.OPEN) return;
      if (!alive) {
        // Messages wait unsent as well: the client stopped reading (or its network is gone). Say so, as a slow consumer.
        if (this.#pending > 0) this.#slowConsumer(`took neither its messages nor a ping for ${this.#settings.pingMs} ms`);
        else this.#ws.terminate();
        return;
      }
      alive = false;
      this.#ws.ping();
      next = setTimeout(() => afterPendingInput(heartbeat), this.#settings.pingMs);
    };
    next = setTimeout(() => afterPendingInput(heartbeat), this.#settings.pingMs);
    try {
      const credential = takeQueryCredential(this.#req.url ?? "/", this.#req.headers, ["access_token", "api_key"]);
      const hasCredential = credential.headers.authorization !== undefined || credential.headers["x-api-key"] !== undefined;
      const headers = hasCredential ? credential.headers : { ...credential.headers, ...(await this.#authMessage()) };
      // The call's values carry its trace context, so the watch's database work joins its trace.
      const stream = await this.#start({ headers, query: credential.query, redactedUrl: credential.redactedUrl, signal: this.#abort.signal, values: this.#meter.values });
      const messages = new WatchSocketMessages();
      for await (const response of stream) {
        const message = messages.next(response.item);
        if (message !== undefined) await this.#send(message);
      }
      this.#meter.code(0);
      this.#close(closeCodes.completed, "operation finished");
    } catch (err) {
      if (err instanceof SlowConsumer) {
        this.#slowConsumer(err.message);
        return;
      }
      const error = err instanceof ConnectError ? err : toConnectError(err, "");
      this.#meter.code(this.#abort.signal.aborted && !this.#goingAway ? Code.Canceled : error.code);
      if (this.#ws.readyState === this.#ws.OPEN) this.#close(this.#closeCodeOf(error), `${Code[error.code]}: ${error.rawMessage}`);
    } finally {
      clearTimeout(next);
      this.#meter.end();
    }
  }

  /** The instance drains: close with 1001 (the client reconnects, to another instance, with after_sequence). */
  goingAway(): void {
    this.#goingAway = true;
    this.#close(closeCodes.goingAway, "server shutting down; reconnect with after_sequence");
  }

  /** The credential of the first message, `{"type":"auth","token":…}` (or `access_token` / `api_key`), as the header it stands for. */
  #authMessage(): Promise<IncomingHttpHeaders> {
    return new Promise((resolve, reject) => {
      let settled = false;
      // A message that arrived in time but waits unread (the process was busy) is in time.
      const late = () => afterPendingInput(() => settled || fail(new UnauthenticatedError("no auth message in time")));
      const timer = setTimeout(late, this.#settings.limits.authTimeoutMs);
      const onMessage = (data: RawData, isBinary: boolean) => {
        let parsed: unknown;
        try {
          parsed = isBinary ? undefined : JSON.parse(data.toString());
        } catch {
          parsed = undefined;
        }
        const m = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>;
        const token = [m.token, m.access_token].find((v) => typeof v === "string" && v !== "") as string | undefined;
        const apiKey = typeof m.api_key === "string" && m.api_key !== "" ? m.api_key : undefined;
        if (m.type !== "auth" || (token === undefined) === (apiKey === undefined)) {
          fail(new UnauthenticatedError('the first message must be {"type":"auth","token":"…"}'));
          return;
        }
        done();
        resolve(token !== undefined ? { authorization: `Bearer ${token}` } : { "x-api-key": apiKey });
      };
      const onClose = () => fail(new ConnectError("client disconnected", Code.Canceled));
      const done = () => {
        settled = true;
        clearTimeout(timer);
        this.#ws.off("message", onMessage);
        this.#abort.signal.removeEventListener("abort", onClose);
      };
      const fail = (err: unknown) => {
        done();
        reject(err);
      };
      this.#ws.on("message", onMessage);
      this.#abort.signal.addEventListener("abort", onClose, { once: true });
    });
  }

  /** Sends one message; waits while the client leaves more than the bound unread, and gives up on it after slowConsumerMs. */
  async #send(message: WatchSocketMessage): Promise<void> {
    const data = JSON.stringify(message);
    const size = Buffer.byteLength(data);
    this.#pending += size;
    this.#meter.sent(size);
    this.#ws.send(data, () => {
      this.#pending -= size;
      if (this.#pending <= this.#settings.limits.sendBufferBytes) this.#room?.();
    });
    if (this.#pending <= this.#settings.limits.sendBufferBytes) return;
    const { sendBufferBytes, slowConsumerMs } = this.#settings.limits;
    await new Promise<void>((resolve, reject) => {
      const room = () => {
        clearTimeout(timer);
        this.#room = undefined;
        resolve();
      };
      // Judged after pending I/O, as pongs are: the client may have taken its messages while we were busy.
      const timer = setTimeout(
        () =>
          afterPendingInput(() => {
            if (this.#room !== room) return;
            this.#room = undefined;
            reject(new SlowConsumer(`left over ${sendBufferBytes} bytes unread for ${slowConsumerMs} ms`));
          }),
        slowConsumerMs,
      );
      this.#room = room;
    });
    this.#abort.signal.throwIfAborted();
  }

  /** Closes with 4429: the watch stops at once, and the client resumes with after_sequence when it can keep up. */
  #slowConsumer(why: string): void {
    this.#meter.code(Code.ResourceExhausted);
    this.#close(closeCodes.slowConsumer, `slow consumer: ${why}; reconnect with after_sequence`);
  }

  #closeCodeOf(error: ConnectError): number {
    if (this.#goingAway) return closeCodes.goingAway;
    switch (error.code) {
      case Code.Unauthenticated:
      case Code.PermissionDenied:
        return closeCodes.policy;
      case Code.NotFound:
        return closeCodes.notFound;
      case Code.DeadlineExceeded:
        return closeCodes.deadline;
      case Code.InvalidArgument:
        return closeCodes.invalid;
      case Code.ResourceExhausted:
        return closeCodes.tryAgainLater;
      case Code.Unavailable:
        return closeCodes.tryAgainLater;
      default:
        return closeCodes.internal;
    }
  }

  /**
   * Closes with a code and a reason cut to the protocol's 123 bytes. A
   * client that does not take the close frame (a slow consumer) is cut off
   * a moment later instead of after ws's 30 s closing handshake.
   */
  #close(code: number, reason: string): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    this.#ws.close(code, truncateUtf8(reason, 123));
    // The call ends now, not when the client acknowledges the close.
    this.#abort.abort(new ConnectError("socket closed", Code.Canceled));
    this.#room?.();
    const cut = setTimeout(() => this.#ws.terminate(), 5_000);
    cut.unref();
    this.#ws.once("close", () => clearTimeout(cut));
  }
}

/**
 * Runs `judge` once the process has been through two I/O phases after now
 * (setImmediate runs right after a turn's I/O phase, and one queued there
 * runs after the next turn's). A timer that fires late, because the process
 * was busy or starved of CPU (a loaded machine), comes before the reads it
 * was waiting for: the client's pong, auth message or acknowledgement of
 * its messages may be unread in the socket (the first phase reads it) or,
 * when the client's own turn was held up by the same stall (a client in
 * this process, as in the tests), not yet written (the first phase lets it
 * answer, the second reads the answer). Judged at once, the client would
 * pay for the gateway's delay.
 */
function afterPendingInput(judge: () => void): void {
  setImmediate(() => setImmediate(judge));
}

function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return text;
  // Cut at a character boundary: decoding drops a trailing partial character as U+FFFD, which is then removed.
  return bytes.subarray(0, maxBytes - 3).toString("utf8").replace(/\uFFFD$/, "");
}
