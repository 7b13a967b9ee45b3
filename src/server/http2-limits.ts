import http2 from "node:http2";
import type { ConnectionLimits } from "../config.js";
import type { BodyDeadlines } from "./body-deadlines.js";

/** The HTTP/2 sessions of a server, as boundHttp2Sessions tracks them. */
export interface Http2Sessions {
  /** Sends every session GOAWAY; each closes once its open streams are done, or is cut after `graceMs`. */
  closeAll(graceMs?: number): void;
}

// After GOAWAY a session with no stream left is destroyed by Node; one whose
// client neither finishes nor closes is cut after this long.
const goAwayGraceMs = 5_000;
// How long a drain waits for a PING to come back before its final GOAWAY.
const pingAllowanceMs = 1_000;

/**
 * Bounds HTTP/2 sessions in time, which Node leaves unbounded:
 * - a session with no open stream for `http2IdleTimeoutMs` gets GOAWAY and
 *   is closed (PING frames do not keep it: an idle timer counting only
 *   socket activity would let a client hold a session for ever by pinging);
 * - a stream whose request body is not complete `requestTimeoutMs` after it
 *   opened (or, streamed, goes too long without a piece: BodyDeadlines) is
 *   reset with CANCEL, as a trickled HTTP/1.1 body is cut.
 */
export function boundHttp2Sessions(server: http2.Http2Server | http2.Http2SecureServer, limits: ConnectionLimits, bodies: BodyDeadlines): Http2Sessions {
  const sessions = new Set<http2.ServerHttp2Session>();

  const goAway = (session: http2.ServerHttp2Session, graceMs = goAwayGraceMs) => {
    if (session.closed || session.destroyed) return;
    setTimeout(() => session.destroy(), graceMs).unref();
    // Two GOAWAYs, as grpc-go sends them: the first (last stream id 2^31-1)
    // stops the client opening streams but refuses none; once a PING comes
    // back, every stream the client opened before it heard that has arrived,
    // and the second GOAWAY (Node's close(): the last stream received)
    // refuses nothing the client already sent. A single GOAWAY would reset
    // the streams on the wire with REFUSED_STREAM, which clients report as
    // an error (connect-node: INTERNAL), though nothing of them was read.
    // Node's own client stops reading once it has answered GOAWAY and has
    // no stream left, and never acknowledges the PING: then the second
    // GOAWAY follows after a round trip's allowance.
    const second = () => session.close();
    try {
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
      session.ping(second);
      setTimeout(second, pingAllowanceMs).unref();
    } catch {
      // The session is going away already.
      second();
    }
  };

  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    let open = 0;
    const idle = setTimeout(() => {
      if (open === 0) goAway(session);
    }, limits.http2IdleTimeoutMs);
    idle.unref();
    session.on("stream", (stream: http2.ServerHttp2Stream, _headers: unknown, flags: number) => {
      open++;
      // END_STREAM on the HEADERS frame: the request has no body to wait for.
      if ((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) === 0) {
        bodies.track(stream, () => stream.destroyed, () => stream.close(http2.constants.NGHTTP2_CANCEL));
        const received = () => bodies.forget(stream);
        stream.once("end", received);
        stream.once("close", received);
      }
      stream.once("close", () => {
        if (--open === 0) idle.refresh();
      });
    });
    session.once("close", () => {
      clearTimeout(idle);
      sessions.delete(session);
    });
  });

  return {
    closeAll: (graceMs) => {
      for (const s of sessions) goAway(s, graceMs);
    },
  };
}
