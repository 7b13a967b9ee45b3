import WebSocket from "ws";

/** A WebSocket watch as a client sees it: the typed messages so far, and how it closed. */
export interface SocketWatch {
  readonly ws: WebSocket;
  // biome-ignore lint: the messages are JSON of several shapes.
  readonly messages: Record<string, any>[];
  /** Resolves once the socket is open (rejects if the handshake fails). */
  readonly opened: Promise<void>;
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Pings received from the server. */
  readonly pings: { count: number };
}

/** Opens a WebSocket with Node's `ws` client (and its `options`) and records what arrives. */
export function openSocket(url: string, headers: Record<string, string> = {}, options: WebSocket.ClientOptions = {}): SocketWatch {
  const ws = new WebSocket(url, { ...options, headers });
  const messages: Record<string, unknown>[] = [];
  const pings = { count: 0 };
  ws.on("message", (data) => messages.push(JSON.parse(String(data)) as Record<string, unknown>));
  ws.on("ping", () => pings.count++);
  ws.on("error", () => undefined);
  const opened = new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("unexpected-response", (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
    ws.once("close", () => reject(new Error("closed before open")));
  });
  opened.catch(() => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: String(reason) })));
  return { ws, messages, opened, closed, pings };
}
