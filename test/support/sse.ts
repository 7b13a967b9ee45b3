/** One server-sent event as a client parses it (WHATWG `text/event-stream`). */
export interface SseEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

/** An open event stream: what arrived so far, and how it ended. */
export interface EventStream {
  readonly status: number;
  readonly headers: Headers;
  readonly events: SseEvent[];
  /** Comment lines (without the leading colon and space). */
  readonly comments: string[];
  /** The response body when it was not an event stream (an error's JSON). */
  readonly text: Promise<string>;
  /** Resolves when the stream ends (the server ended it, or close() was called). */
  readonly done: Promise<void>;
  /** Drops the connection, as a client that loses its network does. */
  close(): void;
}

/**
 * Opens `url` with Node's fetch and parses the event stream as it arrives,
 * by the spec's rules: lines split on CR, LF or CRLF; `data` lines joined
 * with newlines; an event dispatched at a blank line; comments kept apart.
 */
export async function openEventStream(url: string, headers: Record<string, string> = {}): Promise<EventStream> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: abort.signal });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const isStream = (res.headers.get("content-type") ?? "").startsWith("text/event-stream");
  const text = isStream ? Promise.resolve("") : res.text().catch(() => "");
  const done = isStream && res.body ? parse(res.body, events, comments).catch(() => undefined) : text.then(() => undefined);
  return { status: res.status, headers: res.headers, events, comments, text, done, close: () => abort.abort() };
}

async function parse(body: ReadableStream<Uint8Array>, events: SseEvent[], comments: string[]): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  let id: string | undefined;
  let event = "";
  let data: string[] = [];
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    for (let m = /\r\n|\r|\n/.exec(buffer); m !== null; m = /\r\n|\r|\n/.exec(buffer)) {
      // A lone CR at the end may be the first half of CRLF: wait for more.
      if (m[0] === "\r" && m.index === buffer.length - 1) break;
      const line = buffer.slice(0, m.index);
      buffer = buffer.slice(m.index + m[0].length);
      if (line === "") {
        if (data.length > 0) events.push({ id, event: event || "message", data: data.join("\n") });
        id = undefined;
        event = "";
        data = [];
      } else if (line.startsWith(":")) {
        comments.push(line.slice(1).trimStart());
      } else {
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "id") id = value;
        else if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
    }
  }
}
