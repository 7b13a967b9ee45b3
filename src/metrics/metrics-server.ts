import http from "node:http";
import type { AddressInfo } from "node:net";
import type { RouteHandler } from "../server/connect-handler.js";

/** The metrics port's server (ANVIL_METRICS_PORT): `/metrics` and nothing else. */
export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves `route` on a port of its own, plain HTTP/1.1, so the metrics can be
 * kept off the API's network (a sidecar, a cluster-internal port) while the
 * API port answers /metrics with 404.
 */
export function listenMetrics(route: RouteHandler, port: number, host: string): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (route(req, res)) return;
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("only /metrics is served on this port\n");
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
