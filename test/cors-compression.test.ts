import { request } from "node:http";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseKinds } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";

interface RawReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body exactly as sent on the wire (compressed if the server compressed it). */
  body: Buffer;
}

/** One HTTP/1.1 request with full control over headers and bytes; nothing is decompressed for us. */
function raw(server: TestServer, method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: server.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

function decoded(reply: RawReply): unknown {
  const coding = reply.headers["content-encoding"];
  const bytes = coding === "gzip" ? gunzipSync(reply.body) : coding === "br" ? brotliDecompressSync(reply.body) : reply.body;
  return JSON.parse(bytes.toString("utf8"));
}

const allowed = "https://app.example.com";
const listUsers = "/anvil.users.v1.UserService/ListUsers";

describe.each(databaseKinds)("CORS, caching and compression on %s", (kind) => {
  let server: TestServer;
  let auth: Record<string, string>;
  beforeAll(async () => {
    server = await startServer(kind, { env: { ANVIL_CORS_ORIGINS: `${allowed}, https://other.example.com` } });
    auth = { authorization: `Bearer ${await server.token()}` };
    // Enough users that a full list is well over the 1 KiB compression threshold.
    for (let i = 0; i < 12; i++) {
      const res = await raw(
        server,
        "POST",
        "/v1/users",
        { ...auth, "content-type": "application/json" },
        JSON.stringify({ email: `cc-${i}@example.com`, displayName: `Compressible user number ${i} `.repeat(4), roles: ["viewer"] }),
      );
      expect(res.status).toBe(200);
    }
  });
  afterAll(async () => {
    await server.close();
  });

  it("answers a preflight from an allowed origin with 204 and the Connect/gRPC-Web headers, without auth", async () => {
    const res = await raw(server, "OPTIONS", listUsers, {
      origin: allowed,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,connect-protocol-version,connect-timeout-ms,authorization,x-grpc-web,x-user-agent,grpc-timeout",
    });
    expect(res.status).toBe(204);
    expect(res.headers["access-control-allow-origin"]).toBe(allowed);
    const methods = String(res.headers["access-control-allow-methods"]).split(", ");
    expect(methods).toEqual(expect.arrayContaining(["GET", "POST", "PATCH", "DELETE"]));
    const headers = String(res.headers["access-control-allow-headers"]).toLowerCase().split(", ");
    for (const h of ["content-type", "connect-protocol-version", "connect-timeout-ms", "grpc-timeout", "x-grpc-web", "x-user-agent", "authorization", "x-request-id"]) {
      expect(headers).toContain(h);
    }
    expect(res.headers["access-control-max-age"]).toBe("7200");
    expect(String(res.headers.vary)).toMatch(/Origin/);
    expect(res.headers["access-control-allow-credentials"]).toBeUndefined();
  });

  it("gives a disallowed origin no CORS headers", async () => {
    const pre = await raw(server, "OPTIONS", "/v1/users", { origin: "https://evil.example.com", "access-control-request-method": "POST" });
    expect(pre.status).toBe(403);
    expect(Object.keys(pre.headers).filter((h) => h.startsWith("access-control-"))).toEqual([]);
    const call = await raw(server, "POST", listUsers, { ...auth, origin: "https://evil.example.com", "content-type": "application/json" }, "{}");
    expect(call.status).toBe(200);
    expect(Object.keys(call.headers).filter((h) => h.startsWith("access-control-"))).toEqual([]);
  });

  it("adds Allow-Origin and the exposed headers to a cross-origin Connect and REST call", async () => {
    for (const [method, path, body] of [
      ["POST", listUsers, "{}"],
      ["GET", "/v1/users?page_size=1", undefined],
    ] as const) {
      const res = await raw(server, method, path, { ...auth, origin: allowed, "content-type": "application/json", "x-request-id": "cors-1" }, body);
      expect(res.status).toBe(200);
      expect(res.headers["access-control-allow-origin"]).toBe(allowed);
      const exposed = String(res.headers["access-control-expose-headers"]).toLowerCase();
      for (const h of ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id"]) expect(exposed).toContain(h);
      expect(res.headers["x-request-id"]).toBe("cors-1");
    }
  });

  it("marks Connect GET and REST GET responses private and revalidated, varying on the token", async () => {
    const query = `?connect=v1&encoding=json&message=${encodeURIComponent("{}")}`;
    for (const path of [`${listUsers}${query}`, "/v1/users"]) {
      const res = await raw(server, "GET", path, auth);
      expect(res.status, path).toBe(200);
      expect(res.headers["cache-control"]).toBe("private, no-cache");
      const vary = String(res.headers.vary);
      for (const h of ["Authorization", "Accept-Encoding", "Origin"]) expect(vary).toContain(h);
    }
    // POST is never cacheable; no caching headers are added to it.
    const post = await raw(server, "POST", listUsers, { ...auth, "content-type": "application/json" }, "{}");
    expect(post.headers["cache-control"]).toBeUndefined();
  });

  it("accepts a gzip-compressed Connect request and compresses a large response (gzip and brotli)", async () => {
    const body = gzipSync(JSON.stringify({ pageSize: 100 }));
    for (const coding of ["gzip", "br"]) {
      const res = await raw(
        server,
        "POST",
        listUsers,
        { ...auth, "content-type": "application/json", "content-encoding": "gzip", "accept-encoding": coding },
        body,
      );
      expect(res.status).toBe(200);
      expect(res.headers["content-encoding"]).toBe(coding);
      const json = decoded(res) as { users: unknown[] };
      expect(json.users.length).toBeGreaterThanOrEqual(12);
      expect(res.body.byteLength).toBeLessThan(JSON.stringify(json).length);
    }
  });

  it("leaves responses under the threshold uncompressed", async () => {
    const small = await raw(server, "POST", listUsers, { ...auth, "content-type": "application/json", "accept-encoding": "gzip" }, '{"pageSize":1}');
    expect(small.status).toBe(200);
    expect(small.headers["content-encoding"]).toBeUndefined();
    const rest = await raw(server, "GET", "/v1/users?page_size=1", { ...auth, "accept-encoding": "gzip" });
    expect(rest.headers["content-encoding"]).toBeUndefined();
  });

  it("compresses REST both ways: gzip request bodies, gzip and brotli responses", async () => {
    const created = await raw(
      server,
      "POST",
      "/v1/users",
      { ...auth, "content-type": "application/json", "content-encoding": "gzip" },
      gzipSync(JSON.stringify({ email: "gz@example.com", displayName: "Gzipped" })),
    );
    expect(created.status, created.body.toString()).toBe(200);
    expect((decoded(created) as { displayName: string }).displayName).toBe("Gzipped");
    for (const coding of ["gzip", "br"]) {
      const res = await raw(server, "GET", "/v1/users?page_size=100", { ...auth, "accept-encoding": coding });
      expect(res.status).toBe(200);
      expect(res.headers["content-encoding"]).toBe(coding);
      expect((decoded(res) as { users: unknown[] }).users.length).toBeGreaterThanOrEqual(13);
    }
    const unsupported = await raw(server, "POST", "/v1/users", { ...auth, "content-type": "application/json", "content-encoding": "compress" }, "x");
    expect(unsupported.status).toBe(415);
  });
});
