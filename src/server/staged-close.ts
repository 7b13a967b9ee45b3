import type { Duplex } from "node:stream";

/**
 * How long a connection closed while its client may still be sending keeps
 * reading (and discarding) what arrives. Long enough for a client to read
 * the answer and close; short enough that a client trickling bytes cannot
 * hold the socket (nginx's lingering_timeout is 5 s).
 */
const lingerMs = 2_000;

/**
 * Closes a connection in stages (RFC 9112 §9.6): the sending side first,
 * then the whole socket once the client closes its side or `lingerMs`
 * passes, reading and dropping what it still sends meanwhile.
 *
 * Closing at once while request bytes are still arriving makes the kernel
 * answer them with a reset, and a reset discards the answer the client has
 * not read yet: it sees ECONNRESET or EPIPE instead of the status that said
 * why it was refused, and cannot tell a refusal from a crash.
 *
 * `last` is written before the sending side closes, when given.
 */
export function closeInStages(socket: Duplex, last?: string): void {
  if (last === undefined) socket.end();
  else socket.end(last);
  const cut = setTimeout(() => socket.destroy(), lingerMs);
  socket.once("close", () => clearTimeout(cut));
  // Whoever read the socket (the HTTP parser) may have stopped: read and drop the rest here.
  socket.on("data", () => {});
  socket.resume();
}

/**
 * Makes Node's close of an HTTP/1.1 connection after a response staged while
 * `stillSending()` says the client has not finished its request: a body
 * refused as too large, or answered before it was read (an auth failure, a
 * rate limit), on a connection that closes after the answer (the client
 * asked for `Connection: close`, or a drain began).
 *
 * Node closes such a connection with `socket.destroySoon()` (end, then
 * destroy once the end is written); that is the one call replaced here, on
 * this socket only. Otherwise the connection closes as Node closes it.
 */
export function closeInStagesWhileSending(socket: Duplex, stillSending: () => boolean): void {
  const closable = socket as Duplex & { destroySoon?: () => void };
  const destroySoon = closable.destroySoon;
  if (typeof destroySoon !== "function") return;
  closable.destroySoon = function (this: Duplex) {
    if (stillSending()) closeInStages(this);
    else destroySoon.call(this);
  };
}
