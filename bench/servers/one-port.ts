import http from "node:http";
import http2 from "node:http2";
import net from "node:net";

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

/**
 * Cleartext HTTP/1.1 and HTTP/2 (prior knowledge) on one port, told apart by
 * their first bytes ("PRI" opens the HTTP/2 preface; no HTTP/1.1 method
 * does). The bare connect-node peer needs both, because the bench calls it over
 * gRPC on h2 and over Connect JSON / gRPC-Web on HTTP/1.1, as it calls Anvil.
 * The sniff costs once per connection, not per request.
 */
export function listenOnePort(handler: Handler, port: number): Promise<{ close(): Promise<void> }> {
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, handler);
  const h1 = http.createServer({ keepAliveTimeout: 65_000 }, handler);
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    // Three bytes tell them apart: "PRI" (the HTTP/2 preface) is no HTTP/1.1 method, while "P" alone is POST too.
    const onReadable = () => {
      if (socket.readableLength < 3 && !socket.readableEnded) return;
      socket.off("readable", onReadable);
      const head = socket.read(Math.min(3, socket.readableLength)) as Buffer | null;
      if (!head) return socket.destroy();
      socket.unshift(head);
      const isH2 = head.toString("latin1") === "PRI";
      (isH2 ? h2 : h1).emit("connection", socket);
      if (!isH2) socket.resume();
    };
    socket.on("readable", onReadable);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () =>
      resolve({
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            for (const s of sockets) s.destroy();
          }),
      }),
    );
  });
}
