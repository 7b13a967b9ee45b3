import type { DescMethod, Message } from "@bufbuild/protobuf";

/** One server-sent event, or a comment line (ignored by clients, keeps proxies from closing an idle stream). */
export type SseFrame = { readonly id?: string; readonly event: string; readonly data: string } | { readonly comment: string };

/**
 * How a server-streaming method's messages become server-sent events, and
 * how a reconnecting `EventSource` resumes it.
 */
export interface SseBinding {
  /** The request field (proto3 JSON name) a `Last-Event-ID` header sets: the stream resumes after it. */
  readonly resumeField: string;
  /** The event (or comment) of one response message. */
  frame(message: Message): SseFrame;
  /**
   * Whether the stream's first message says nothing follows the resume
   * point and nothing ever will: answered 204, which tells `EventSource`
   * to stop reconnecting.
   */
  exhausted(first: Message, request: Message): boolean;
}

/** The SSE bindings of the server-streaming methods served over REST, by method. */
export type SseBindings = ReadonlyMap<DescMethod, SseBinding>;

/**
 * The wire form of a frame (the WHATWG `text/event-stream` format): `data`
 * is split on line breaks into `data:` lines, so a value can never end the
 * event early or inject a field; a comment likewise stays a comment.
 */
export function formatSseFrame(frame: SseFrame): string {
  if ("comment" in frame) return frame.comment.split(/\r\n|\r|\n/).map((line) => `: ${line}\n`).join("") + "\n";
  let out = "";
  if (frame.id !== undefined) out += `id: ${frame.id.replace(/[\r\n\0]/g, "")}\n`;
  out += `event: ${frame.event.replace(/[\r\n]/g, "")}\n`;
  for (const line of frame.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return `${out}\n`;
}
