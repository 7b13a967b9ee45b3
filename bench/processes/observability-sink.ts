import http from "node:http";
import type { AddressInfo } from "node:net";

/** What the observed server sent: OTLP exports received and /metrics scrapes made. */
export interface ObservabilitySink {
  /** `http://127.0.0.1:<port>`: the server's OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint: string;
  /** Starts scraping `<baseUrl>/metrics` every `everyMs`, as Prometheus would; the returned function stops it. */
  scrape(baseUrl: string, everyMs: number): () => void;
  /** Exports, their bytes, and scrapes so far. */
  counts(): { readonly exports: number; readonly exportBytes: number; readonly scrapes: number; readonly scrapeFailures: number };
  close(): Promise<void>;
}

/**
 * The collector end of the observability case: an OTLP/HTTP endpoint that
 * accepts every trace export (answering as a collector does, 200 with an
 * empty response) and counts it, and a scraper pulling `/metrics`. It does
 * not decode the spans: what is measured is the gateway's cost of recording,
 * batching, encoding and sending them, not a collector's.
 */
export async function startObservabilitySink(): Promise<ObservabilitySink> {
  let exports = 0;
  let exportBytes = 0;
  let scrapes = 0;
  let scrapeFailures = 0;
  const timers: NodeJS.Timeout[] = [];
  const server = http.createServer((req, res) => {
    req.on("data", (c: Buffer) => (exportBytes += c.byteLength));
    req.on("end", () => {
      if (req.url === "/v1/traces") exports++;
      res.writeHead(req.url === "/v1/traces" ? 200 : 404, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    scrape: (baseUrl, everyMs) => {
      const timer = setInterval(() => {
          fetch(`${baseUrl}/metrics`)
            .then(async (res) => {
              await res.arrayBuffer();
              if (res.ok) scrapes++;
              else scrapeFailures++;
            })
            .catch(() => scrapeFailures++);
        }, everyMs);
      timers.push(timer);
      return () => clearInterval(timer);
    },
    counts: () => ({ exports, exportBytes, scrapes, scrapeFailures }),
    close: async () => {
      for (const t of timers) clearInterval(t);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
