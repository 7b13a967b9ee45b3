import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import type { RouteHandler } from "./connect-handler.js";
import { appendVary, compress, type ContentCoding, negotiateCoding } from "./http-compression.js";

/** Where Vite writes the console (console/vite.config.ts), relative to the repository root; git-ignored. */
export const consoleDistDir = fileURLToPath(new URL("../../console/dist", import.meta.url));

const contentTypes: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".json": "application/json",
};

/**
 * Same origin only, no inline script, no framing: the page holds a credential.
 * With single sign-on, the page may also fetch from the identity provider
 * (its discovery document and token endpoint, for the code exchange).
 */
function securityHeaders(identityProvider: string | undefined): Readonly<Record<string, string>> {
  const connect = identityProvider === undefined ? "" : `; connect-src 'self' ${new URL(identityProvider).origin}`;
  return {
    "content-security-policy": `default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'${connect}`,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  };
}

/** Options of createConsoleRoute. */
export interface ConsoleRouteOptions {
  /** Where the build is (default console/dist). */
  readonly dir?: string;
  /** The OpenID provider's issuer when the console signs in with it: the page may fetch from its origin. */
  readonly identityProvider?: string | undefined;
}

/** One built file, held in memory with its compressed forms made on first use. */
class Asset {
  readonly etag: string;
  readonly #encoded = new Map<ContentCoding, Promise<Buffer>>();
  constructor(
    readonly body: Buffer,
    readonly type: string,
    readonly cacheControl: string,
  ) {
    this.etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
  }
  encoded(coding: ContentCoding): Promise<Buffer> {
    let out = this.#encoded.get(coding);
    if (out === undefined) this.#encoded.set(coding, (out = compress(coding, this.body)));
    return out;
  }
}

/**
 * `GET /console` and below: the web console (console/), built by Vite into
 * console/dist and read once at startup. Hashed files under /console/assets/
 * are immutable for a year; every other path below /console is a page of the
 * single-page app and gets index.html (no-cache, so a deployment shows at
 * once). Bodies are compressed per Accept-Encoding. Without a build the route
 * answers 503 with how to make one, and the API is unaffected.
 */
export function createConsoleRoute(log: Logger, options: ConsoleRouteOptions = {}): RouteHandler {
  const dir = options.dir ?? consoleDistDir;
  const headers = securityHeaders(options.identityProvider);
  const index = existsSync(join(dir, "index.html")) ? new Asset(readFileSync(join(dir, "index.html")), contentTypes[".html"]!, "no-cache") : undefined;
  if (index === undefined) log.warn({ dir }, "console not built: GET /console answers 503 (npm start builds it)");
  const assets = new Map<string, Asset>();
  const assetDir = join(dir, "assets");
  if (existsSync(assetDir)) {
    for (const name of readdirSync(assetDir)) {
      const type = contentTypes[extname(name)] ?? "application/octet-stream";
      assets.set(`/console/assets/${name}`, new Asset(readFileSync(join(assetDir, name)), type, "public, max-age=31536000, immutable"));
    }
  }
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0]!;
    if (path !== "/console" && !path.startsWith("/console/")) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" });
      res.end(`${req.method} is not allowed on the console\n`);
      return true;
    }
    if (path.startsWith("/console/assets/")) {
      const asset = assets.get(path);
      if (asset === undefined) {
        // A missing hashed file is a stale page, not a client route: never answer it with index.html.
        res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-cache" });
        res.end("not found\n");
      } else send(req, res, asset, headers);
      return true;
    }
    if (index === undefined) {
      res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-cache", "retry-after": "10" });
      res.end("The console is not built. `npm start` builds it; or run `npm run console:build`.\n");
      return true;
    }
    send(req, res, index, headers);
    return true;
  };
}

function send(req: Parameters<RouteHandler>[0], res: Parameters<RouteHandler>[1], asset: Asset, security: Readonly<Record<string, string>>): void {
  const headers: Record<string, string> = { ...security, "content-type": asset.type, "cache-control": asset.cacheControl, etag: asset.etag };
  appendVary(res, "Accept-Encoding");
  if (req.headers["if-none-match"] === asset.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const coding = negotiateCoding(req.headers["accept-encoding"]);
  (coding === undefined ? Promise.resolve(asset.body) : asset.encoded(coding))
    .then((body) => {
      if (coding !== undefined) headers["content-encoding"] = coding;
      headers["content-length"] = String(body.byteLength);
      res.writeHead(200, headers);
      if (req.method === "HEAD") res.end();
      else res.end(body);
    })
    .catch(() => {
      // The client went away.
    });
}
