import { once } from "node:events";
import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll } from "vitest";

/** A plain HTTP/1.1 server of the enclosing describe block, while its tests run. */
export interface SuiteHttpServer {
  /** `http://127.0.0.1:<port>`, set once the block's beforeAll hooks ran. */
  readonly url: string;
}

/**
 * Serves `listener` on a free loopback port from the enclosing block's
 * beforeAll (after the hooks registered before this call) and closes the
 * server in its afterAll.
 */
export function suiteHttpServer(listener: RequestListener): SuiteHttpServer {
  let server: Server | undefined;
  const served = { url: "" };
  beforeAll(async () => {
    server = createServer(listener);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    served.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    if (server === undefined) return;
    server.close();
    await once(server, "close");
  });
  return served;
}
