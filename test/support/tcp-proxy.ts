import net from "node:net";

/** A TCP proxy in front of a port whose connections a test can cut, loudly or silently, as networks fail. */
export interface TcpProxy {
  readonly port: number;
  /** Destroys every open connection, both ways (a reset both sides see); new connections are accepted as before. */
  dropAll(): number;
  /**
   * While on, bytes are read and thrown away in both directions: the silent
   * cut neither side notices (a dead link, a firewall dropping packets),
   * where only a timeout of one's own can help. Off: forwarding resumes.
   */
  blackhole(on: boolean): void;
  close(): Promise<void>;
}

/**
 * Starts a proxy on a free loopback port, forwarding every connection to
 * `targetPort` on `targetHost` (loopback by default).
 *
 * @example
 *   const proxy = await startTcpProxy(5432, "127.0.0.1");
 *   proxy.blackhole(true); // queries hang until the client's own timeout
 */
export async function startTcpProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let silent = false;
  const forward = (from: net.Socket, to: net.Socket) =>
    from.on("data", (chunk: Buffer) => {
      if (silent) return;
      // With backpressure, as pipe() would: a slow side holds the other, it is not buffered here.
      if (!to.write(chunk)) {
        from.pause();
        to.once("drain", () => from.resume());
      }
    });
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    forward(client, upstream);
    forward(upstream, client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const destroyAll = () => {
    const n = pairs.size;
    for (const [a, b] of [...pairs]) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
    return n;
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    dropAll: destroyAll,
    blackhole: (on) => {
      silent = on;
    },
    close: async () => {
      destroyAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
