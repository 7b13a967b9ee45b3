import { promisify } from "node:util";
import { brotliCompress, brotliDecompress, constants, gunzip, gzip } from "node:zlib";
import type { NodeRequest, NodeResponse } from "./connect-handler.js";

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);
const brotliAsync = promisify(brotliCompress);
const unbrotliAsync = promisify(brotliDecompress);

/** Content codings Anvil reads and writes on plain HTTP routes (REST, /openapi.json), like Connect does for RPCs. */
export type ContentCoding = "gzip" | "br";

/**
 * Picks the response coding from `Accept-Encoding`: brotli when accepted
 * (smaller for JSON), else gzip, else none. `q=0` refuses a coding.
 */
export function negotiateCoding(acceptEncoding: string | undefined): ContentCoding | undefined {
  if (!acceptEncoding) return undefined;
  const accepted = new Set<string>();
  for (const part of acceptEncoding.split(",")) {
    const [name = "", ...params] = part.trim().toLowerCase().split(";");
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    if (q !== undefined && Number(q.slice(2)) === 0) continue;
    accepted.add(name.trim());
  }
  if (accepted.has("br")) return "br";
  if (accepted.has("gzip") || accepted.has("*")) return "gzip";
  return undefined;
}

/** Compresses `body` with `coding`. Brotli at quality 5: most of the gain at a fraction of the default's CPU. */
export function compress(coding: ContentCoding, body: Uint8Array): Promise<Buffer> {
  return coding === "gzip" ? gzipAsync(body) : brotliAsync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } });
}

/**
 * Decompresses `body`, refusing output beyond `maxBytes` (a small gzip bomb
 * must hit the same limit as a large plain body). Throws RangeError past it.
 */
export function decompress(coding: ContentCoding, body: Uint8Array, maxBytes: number): Promise<Buffer> {
  return coding === "gzip" ? gunzipAsync(body, { maxOutputLength: maxBytes }) : unbrotliAsync(body, { maxOutputLength: maxBytes });
}

/**
 * Writes a complete body, compressed per the request's `Accept-Encoding`
 * when it is at least `minBytes` long — the same threshold Connect uses.
 */
export async function sendBody(
  req: NodeRequest,
  res: NodeResponse,
  status: number,
  headers: Record<string, string>,
  body: Uint8Array,
  minBytes: number,
): Promise<number> {
  const coding = body.byteLength >= minBytes ? negotiateCoding(req.headers["accept-encoding"]) : undefined;
  const out = coding ? await compress(coding, body) : body;
  const all: Record<string, string> = { ...headers, "content-length": String(out.byteLength) };
  if (coding) all["content-encoding"] = coding;
  appendVary(res, "Accept-Encoding");
  res.writeHead(status, all);
  if (req.method === "HEAD") {
    res.end();
    return 0;
  }
  res.end(out);
  return out.byteLength;
}

/**
 * Adds names to the response's `Vary` header without duplicating or
 * dropping what another layer (CORS, caching) already put there.
 */
export function appendVary(res: NodeResponse, ...names: string[]): void {
  const current = res.getHeader("vary");
  const list = (Array.isArray(current) ? current.join(",") : String(current ?? ""))
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const name of names) if (!list.some((v) => v.toLowerCase() === name.toLowerCase())) list.push(name);
  res.setHeader("vary", list.join(", "));
}
