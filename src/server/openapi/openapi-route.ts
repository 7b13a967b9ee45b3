import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { RouteHandler } from "../connect-handler.js";
import { sendBody } from "../http-compression.js";

/** Where `npm run generate:openapi` writes the document, relative to the repository root. */
export const openApiFile = "gen/openapi/anvil.openapi.json";

/**
 * `GET /openapi.json`, public: the OpenAPI document generated from the
 * protos at build time (see src/cli/openapi.ts), read once at startup. A
 * missing file stops startup, like any other missing generated code.
 */
export function createOpenApiRoute(compressMinBytes: number): RouteHandler {
  const body = readFileSync(fileURLToPath(new URL(`../../../${openApiFile}`, import.meta.url)));
  return (req, res) => {
    if ((req.url ?? "").split("?", 1)[0] !== "/openapi.json") return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "application/json" });
      res.end(JSON.stringify({ code: "unimplemented", message: `${req.method} is not allowed on /openapi.json`, details: [] }));
      return true;
    }
    // Public and identical for every caller, but changes with each deployment: revalidate.
    sendBody(req, res, 200, { "content-type": "application/json", "cache-control": "public, no-cache" }, body, compressMinBytes).catch(() => {
      // The client went away.
    });
    return true;
  };
}
