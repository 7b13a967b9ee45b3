import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import http from "node:http";
import http2 from "node:http2";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetUserRequestSchema, ListUsersRequestSchema, ListUsersResponseSchema } from "../gen/anvil/users/v1/users_pb.js";
import { databaseKinds } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * The fast unary path (src/server/fast-unary/) must put exactly the bytes of
 * connect's universal handler on the wire. This sends the same raw requests —
 * successes and every failure the protocol layer decides — over Connect,
 * gRPC and gRPC-Web to two servers, one per path, and compares status,
 * headers, body and trailers.
 */
interface Wire {
  status: number;
  headers: Record<string, string>;
  body: string;
  trailers: Record<string, string>;
}

// Framing headers that legitimately differ with how a body is written (one
// write with a length, or chunks); everything else must be identical.
const framing = new Set(["date", "connection", "keep-alive", "transfer-encoding", "content-length"]);

function pick(h: http.IncomingHttpHeaders | http2.IncomingHttpHeaders, keepLength: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith(":") || v === undefined) continue;
    if (framing.has(k) && !(keepLength && k === "content-length")) continue;
    out[k] = Array.isArray(v) ? v.join(", ") : String(v);
  }
  return out;
}

function h1(port: number, path: string, headers: Record<string, string>, body: Uint8Array, keepLength: boolean): Promise<Wire> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method: "POST", headers: { ...headers, "content-length": body.byteLength } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: pick(res.headers, keepLength), body: Buffer.concat(chunks).toString("base64"), trailers: {} }),
      );
    });
    req.on("error", reject);
    req.end(body);
  });
}

function h2(port: number, path: string, headers: Record<string, string>, body: Uint8Array): Promise<Wire> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, te: "trailers", ...headers });
    const chunks: Buffer[] = [];
    let status = 0;
    let head: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      head = pick(h, false);
    });
    stream.on("trailers", (t) => {
      trailers = pick(t, false);
    });
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      session.close();
      resolve({ status, headers: head, body: Buffer.concat(chunks).toString("base64"), trailers });
    });
    stream.on("error", reject);
    stream.end(body);
  });
}

function envelope(data: Uint8Array, flags = 0): Uint8Array {
  const out = Buffer.alloc(5 + data.byteLength);
  out[0] = flags;
  out.writeUInt32BE(data.byteLength, 1);
  out.set(data, 5);
  return out;
}

const svc = "/anvil.users.v1.UserService";
const missing = "00000000-0000-4000-8000-000000000000";
const listBin = toBinary(ListUsersRequestSchema, create(ListUsersRequestSchema, { pageSize: 5 }));
const getMissingBin = toBinary(GetUserRequestSchema, create(GetUserRequestSchema, { id: missing }));
const getBadBin = toBinary(GetUserRequestSchema, create(GetUserRequestSchema, { id: "not-a-uuid" }));
const garbage = new Uint8Array([0x0a, 0xff, 0xff, 0xff]);
const big = new TextEncoder().encode(JSON.stringify({ pageToken: "x".repeat(4096) }));

type Case = [name: string, protocol: "connect" | "grpc" | "grpc-web", path: string, headers: Record<string, string>, body: Uint8Array, auth: "admin" | "viewer" | "none"];

const cases: Case[] = [];
const json = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
// Connect unary, JSON and binary.
cases.push(
  ["connect json list", "connect", `${svc}/ListUsers`, { "content-type": "application/json" }, json({ pageSize: 5 }), "admin"],
  ["connect proto list", "connect", `${svc}/ListUsers`, { "content-type": "application/proto" }, listBin, "admin"],
  ["connect gzip request", "connect", `${svc}/ListUsers`, { "content-type": "application/json", "content-encoding": "gzip" }, gzipSync(json({})), "admin"],
  ["connect not found", "connect", `${svc}/GetUser`, { "content-type": "application/json" }, json({ id: missing }), "admin"],
  ["connect invalid field", "connect", `${svc}/GetUser`, { "content-type": "application/json" }, json({ id: "nope" }), "admin"],
  ["connect malformed json", "connect", `${svc}/GetUser`, { "content-type": "application/json" }, new TextEncoder().encode("{"), "admin"],
  ["connect malformed proto", "connect", `${svc}/GetUser`, { "content-type": "application/proto" }, garbage, "admin"],
  ["connect no token", "connect", `${svc}/ListUsers`, { "content-type": "application/json" }, json({}), "none"],
  ["connect viewer", "connect", `${svc}/ListUsers`, { "content-type": "application/json" }, json({}), "viewer"],
  ["connect unknown encoding", "connect", `${svc}/ListUsers`, { "content-type": "application/json", "content-encoding": "zstd" }, json({}), "admin"],
  ["connect bad timeout", "connect", `${svc}/ListUsers`, { "content-type": "application/json", "connect-timeout-ms": "soon" }, json({}), "admin"],
  ["connect oversized", "connect", `${svc}/ListUsers`, { "content-type": "application/json" }, big, "admin"],
  ["connect wrong content type", "connect", `${svc}/ListUsers`, { "content-type": "text/plain" }, json({}), "admin"],
);
for (const [protocol, ct] of [
  ["grpc", "application/grpc"],
  ["grpc-web", "application/grpc-web+proto"],
] as const) {
  cases.push(
    [`${protocol} list`, protocol, `${svc}/ListUsers`, { "content-type": ct }, envelope(listBin), "admin"],
    [`${protocol} list gzip`, protocol, `${svc}/ListUsers`, { "content-type": ct, "grpc-encoding": "gzip" }, envelope(gzipSync(listBin), 1), "admin"],
    [`${protocol} not found`, protocol, `${svc}/GetUser`, { "content-type": ct }, envelope(getMissingBin), "admin"],
    [`${protocol} invalid field`, protocol, `${svc}/GetUser`, { "content-type": ct }, envelope(getBadBin), "admin"],
    [`${protocol} malformed proto`, protocol, `${svc}/GetUser`, { "content-type": ct }, envelope(garbage), "admin"],
    [`${protocol} no token`, protocol, `${svc}/ListUsers`, { "content-type": ct }, envelope(listBin), "none"],
    [`${protocol} viewer`, protocol, `${svc}/ListUsers`, { "content-type": ct }, envelope(listBin), "viewer"],
    [`${protocol} unknown encoding`, protocol, `${svc}/ListUsers`, { "content-type": ct, "grpc-encoding": "zstd" }, envelope(listBin), "admin"],
    [`${protocol} compressed flag without encoding`, protocol, `${svc}/ListUsers`, { "content-type": ct }, envelope(gzipSync(listBin), 1), "admin"],
    [`${protocol} bad timeout`, protocol, `${svc}/ListUsers`, { "content-type": ct, "grpc-timeout": "forever" }, envelope(listBin), "admin"],
    [`${protocol} truncated envelope`, protocol, `${svc}/ListUsers`, { "content-type": ct }, envelope(listBin).subarray(0, 6), "admin"],
    [`${protocol} two messages`, protocol, `${svc}/ListUsers`, { "content-type": ct }, Buffer.concat([envelope(listBin), envelope(listBin)]), "admin"],
    [`${protocol} oversized`, protocol, `${svc}/ListUsers`, { "content-type": ct }, envelope(new Uint8Array(4096)), "admin"],
  );
}

describe.each(databaseKinds)("fast and universal serving paths on %s", (kind) => {
  let fast: TestServer;
  let universal: TestServer;
  const tokens: Record<string, Record<string, string>> = {};
  beforeAll(async () => {
    const env = { ANVIL_MAX_REQUEST_BYTES: "2048" };
    [fast, universal] = await Promise.all([
      startServer(kind, { env: { ...env, ANVIL_FAST_UNARY: "on" } }),
      startServer(kind, { env: { ...env, ANVIL_FAST_UNARY: "off" } }),
    ]);
    for (const s of [fast, universal]) {
      tokens[s.baseUrl] = {
        admin: `Bearer ${await s.token("globex-admin", { sub: "same" })}`,
        viewer: `Bearer ${await s.token("acme-viewer", { sub: "same" })}`,
      };
    }
  });
  afterAll(async () => {
    await Promise.all([fast?.close(), universal?.close()]);
  });

  it.each(cases)("%s: identical on the wire", async (_name, protocol, path, headers, body, auth) => {
    const send = (s: TestServer) => {
      const h: Record<string, string> = { ...headers, "x-request-id": "fixed-request-id" };
      if (auth !== "none") h.authorization = tokens[s.baseUrl]![auth]!;
      return protocol === "grpc" ? h2(s.port, path, h, body) : h1(s.port, path, h, body, protocol === "connect");
    };
    const [a, b] = [await send(fast), await send(universal)];
    expect(a).toEqual(b);
    // And the answer is a real one, not two identical failures of the harness.
    expect(a.status).toBeGreaterThan(0);
  });

  it("compresses a large gRPC and gRPC-Web response envelope on both paths when the client accepts gzip, and only then", async () => {
    const page = toBinary(ListUsersRequestSchema, create(ListUsersRequestSchema, { pageSize: 100 }));
    for (const s of [fast, universal]) {
      const authorization = tokens[s.baseUrl]!.admin!;
      // Enough users that the page is over ANVIL_COMPRESS_MIN_BYTES (1 KiB).
      for (let i = 0; i < 12; i++) {
        const res = await fetch(`${s.baseUrl}${svc}/CreateUser`, {
          method: "POST",
          headers: { authorization, "content-type": "application/json" },
          body: JSON.stringify({ user: { email: `packed-${i}@example.com`, displayName: `A user with a long name to make the page large ${i}` } }),
        });
        expect(res.status).toBe(200);
      }
      for (const protocol of ["grpc", "grpc-web"] as const) {
        const ct = protocol === "grpc" ? "application/grpc" : "application/grpc-web+proto";
        const send = (accept: Record<string, string>) =>
          protocol === "grpc" ? h2(s.port, `${svc}/ListUsers`, { "content-type": ct, authorization, ...accept }, envelope(page)) : h1(s.port, `${svc}/ListUsers`, { "content-type": ct, authorization, ...accept }, envelope(page), false);
        const packed = await send({ "grpc-accept-encoding": "gzip" });
        const body = Buffer.from(packed.body, "base64");
        expect(packed.headers["grpc-encoding"], `${protocol} on ${s === fast ? "fast" : "universal"} path`).toBe("gzip");
        expect(body[0], "the envelope's compressed flag").toBe(1);
        const payload = gunzipSync(body.subarray(5, 5 + body.readUInt32BE(1)));
        expect(fromBinary(ListUsersResponseSchema, payload).users.length).toBeGreaterThanOrEqual(12);
        const plain = Buffer.from((await send({ "grpc-accept-encoding": "identity" })).body, "base64");
        expect(plain[0], "no compression the client did not accept").toBe(0);
        expect(Buffer.compare(plain.subarray(5, 5 + plain.readUInt32BE(1)), payload)).toBe(0);
      }
    }
  });

  it("reports malformed protobuf as INVALID_ARGUMENT on both paths", async () => {
    for (const s of [fast, universal]) {
      const w = await h2(s.port, `${svc}/GetUser`, { "content-type": "application/grpc", authorization: tokens[s.baseUrl]!.admin! }, envelope(garbage));
      expect(w.trailers["grpc-status"]).toBe("3");
    }
  });
});
