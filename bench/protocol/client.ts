import http from "node:http";
import http2 from "node:http2";
import type { Call, Reply } from "./calls.js";

/** A connection that sends calls one at a time and hands back whole replies (headers, body, trailers). */
export interface CallClient {
  send(call: Call, body?: Buffer): Promise<Reply>;
  close(): void;
}

/**
 * Opens a client of the call's HTTP version to `baseUrl`: one HTTP/2
 * session with prior knowledge, or a keep-alive HTTP/1.1 agent. Used by the
 * sample checks and by the bench's own HTTP/2 load loop, so both see
 * exactly the bytes the server sent, trailers included.
 */
export function openClient(baseUrl: string, version: "h1" | "h2"): CallClient {
  return version === "h2" ? h2Client(baseUrl) : h1Client(baseUrl);
}

function h2Client(baseUrl: string): CallClient {
  const session = http2.connect(baseUrl);
  session.on("error", () => {});
  return {
    send: (call, body = call.body()) => sendH2(session, call, body),
    close: () => session.close(),
  };
}

/**
 * Sends one call on an HTTP/2 session and resolves with the whole reply,
 * trailers included; rejects when the stream fails or closes without a
 * response. With `timeoutMs`, a stream still open then is cancelled.
 */
export function sendH2(session: http2.ClientHttp2Session, call: Call, body = call.body(), timeoutMs?: number): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const stream = session.request({ ":method": call.method, ":path": call.path, ...call.headers }, { endStream: body === undefined });
    let headers: Record<string, string | string[] | undefined> = {};
    let trailers: Record<string, string | string[] | undefined> = {};
    const chunks: Buffer[] = [];
    if (timeoutMs !== undefined) stream.setTimeout(timeoutMs, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", reject);
    stream.on("close", () => {
      const status = Number(headers[":status"] ?? 0);
      if (status === 0) reject(new Error(`stream closed without a response (code ${stream.rstCode})`));
      else resolve({ status, headers, trailers, body: Buffer.concat(chunks) });
    });
    if (body !== undefined) stream.end(body);
  });
}

function h1Client(baseUrl: string): CallClient {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return {
    send: (call, body = call.body()) =>
      new Promise<Reply>((resolve, reject) => {
        const req = http.request(`${baseUrl}${call.path}`, { method: call.method, headers: call.headers, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks) }),
          );
        });
        req.on("error", reject);
        req.end(body);
      }),
    close: () => agent.destroy(),
  };
}

/** Outcome of a sample check. */
export interface SampleCheck {
  readonly checked: number;
  readonly failed: number;
  /** The first failure, to show in the report. */
  readonly firstFailure?: string;
  /** Body length of the last correct answer (h2load's byte-count guard compares against it). */
  readonly bodyBytes?: number;
}

/**
 * Sends `count` calls one by one and checks each answer's status and
 * content. Run before and after every measured run: a server that only
 * answers errors, or starts to under load, is caught here.
 */
export async function sampleCheck(baseUrl: string, call: Call, count: number): Promise<SampleCheck> {
  const client = openClient(baseUrl, call.http);
  let failed = 0;
  let firstFailure: string | undefined;
  let bodyBytes: number | undefined;
  try {
    for (let i = 0; i < count; i++) {
      let problem: string | undefined;
      try {
        const reply = await client.send(call);
        problem = call.verify(reply);
        if (problem === undefined) bodyBytes = reply.body.length;
      } catch (err) {
        problem = err instanceof Error ? err.message : String(err);
      }
      if (problem !== undefined) {
        failed++;
        firstFailure ??= problem;
      }
    }
  } finally {
    client.close();
  }
  return { checked: count, failed, ...(firstFailure === undefined ? {} : { firstFailure }), ...(bodyBytes === undefined ? {} : { bodyBytes }) };
}
