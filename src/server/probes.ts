import type { DatabaseHandle } from "../db/database.js";
import type { RouteHandler } from "./connect-handler.js";
import type { ServingMonitor } from "./health/serving-monitor.js";

/**
 * `GET /healthz` (the process is alive) and `GET /readyz` (not draining, the
 * database answers and the schema is current), for load balancers and
 * Kubernetes. /readyz asks the same ServingMonitor as gRPC health, so both
 * agree and share the cached schema check; /readyz pings every time. Neither
 * needs a token.
 */
export function createProbes(database: Pick<DatabaseHandle, "kind">, monitor: ServingMonitor): RouteHandler {
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
    monitor.readiness(true).then(
      (r) => (r.ready ? reply(200, { status: "ready", database: database.kind }) : reply(503, { status: "not ready", reason: r.reason })),
      () => reply(503, { status: "not ready", reason: "readiness check failed" }),
    );
    return true;
  };
}
