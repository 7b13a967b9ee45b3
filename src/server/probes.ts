import type { DatabaseHandle } from "../db/database.js";
import type { RouteHandler } from "./connect-handler.js";

/**
 * `GET /healthz` (the process is alive) and `GET /readyz` (the database
 * answers and the schema is current), for load balancers and Kubernetes.
 * Neither needs a token.
 */
export function createProbes(database: DatabaseHandle, isDraining: () => boolean): RouteHandler {
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0];
    if (path !== "/healthz" && path !== "/readyz") return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" });
      res.end();
      return true;
    }
    const reply = (status: number, body: object) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      if (req.method === "HEAD") res.end();
      else res.end(JSON.stringify(body));
    };
    if (path === "/healthz") {
      reply(200, { status: "ok" });
      return true;
    }
    if (isDraining()) {
      reply(503, { status: "draining" });
      return true;
    }
    withTimeout(database.ping(), 2_000).then(
      () => reply(200, { status: "ready", database: database.kind }),
      () => reply(503, { status: "database unreachable" }),
    );
    return true;
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timeout")), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
