import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { startServer, type TestServer } from "./support/server.js";

const run = promisify(execFile);

/** A throwaway self-signed certificate for localhost and 127.0.0.1, or undefined without openssl. */
async function selfSignedCertificate(dir: string): Promise<{ cert: string; key: string } | undefined> {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  try {
    await run("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout", key, "-out", cert,
    ]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  return { cert, key };
}

const dir = mkdtempSync(join(tmpdir(), "anvil-tls-"));
const pem = await selfSignedCertificate(dir);
if (!pem) console.warn("tls.test: skipped — openssl is not installed, so no test certificate can be made");

/** Sends one Connect JSON unary call over HTTPS/1.1 and reports the negotiated protocol. */
function postHttp1(port: number, ca: Buffer, path: string, token: string, body: object) {
  return new Promise<{ status: number; alpn: string | false | null; json: any }>((resolve, reject) => {
    // ALPNProtocols is a TLS socket option https.request passes through, though its type omits it.
    const options: https.RequestOptions & { ALPNProtocols: string[] } = {
      host: "127.0.0.1",
      port,
      path,
      agent: false,
      method: "POST",
      ca,
      ALPNProtocols: ["http/1.1"],
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    };
    const req = https.request(options, (res) => {
      // Read now: the socket is detached from the response once it ends.
      const alpn = (res.socket as TLSSocket).alpnProtocol;
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode ?? 0, alpn, json: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
        } catch (err) {
          reject(err);
        }
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

describe.skipIf(!pem)("TLS with ALPN on one port", () => {
  let server: TestServer;
  let token: string;
  let ca: Buffer;
  let baseUrl: string;
  let userId: string;

  beforeAll(async () => {
    server = await startServer("pglite", { env: { TLS_CERT: pem!.cert, TLS_KEY: pem!.key } });
    ca = readFileSync(pem!.cert);
    token = await server.token();
    baseUrl = `https://127.0.0.1:${server.port}`;
    const auth = { authorization: `Bearer ${token}` };
    const client = createClient(UserService, createGrpcTransport({ baseUrl, nodeOptions: { ca } }));
    userId = (await client.createUser({ user: { email: "tls@example.com", displayName: "over tls" } }, { headers: auth })).user!.id;
  });
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses cleartext on the TLS port", async () => {
    await expect(fetch(`http://127.0.0.1:${server.port}/healthz`)).rejects.toThrow();
  });

  it("serves HTTP/2 (ALPN h2): gRPC GetUser and ListUsers", async () => {
    // The negotiated protocol, seen from a plain node:http2 client.
    const session = http2.connect(baseUrl, { ca });
    try {
      await new Promise<void>((resolve, reject) => {
        session.once("connect", () => resolve());
        session.once("error", reject);
      });
      expect(session.alpnProtocol).toBe("h2");
      const stream = session.request({ ":method": "GET", ":path": "/healthz" });
      const status = await new Promise<number>((resolve, reject) => {
        stream.once("response", (headers) => resolve(Number(headers[":status"])));
        stream.once("error", reject);
      });
      stream.resume();
      expect(status).toBe(200);
    } finally {
      session.close();
    }

    const client = createClient(UserService, createGrpcTransport({ baseUrl, nodeOptions: { ca } }));
    const headers = { authorization: `Bearer ${token}` };
    expect((await client.getUser({ id: userId }, { headers })).user!.email).toBe("tls@example.com");
    expect((await client.listUsers({}, { headers })).users.map((u) => u.id)).toContain(userId);
  });

  it("serves HTTP/1.1 (ALPN http/1.1) on the same port: Connect GetUser and ListUsers", async () => {
    const got = await postHttp1(server.port, ca, "/anvil.users.v1.UserService/GetUser", token, { id: userId });
    expect(got.alpn).toBe("http/1.1");
    expect(got.status).toBe(200);
    expect(got.json.user.id).toBe(userId);
    const listed = await postHttp1(server.port, ca, "/anvil.users.v1.UserService/ListUsers", token, {});
    expect(listed.alpn).toBe("http/1.1");
    expect(listed.json.users.map((u: { id: string }) => u.id)).toContain(userId);

    const client = createClient(UserService, createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { ca } }));
    const headers = { authorization: `Bearer ${token}` };
    expect((await client.getUser({ id: userId }, { headers })).user!.displayName).toBe("over tls");
  });

  it("falls back to HTTP/1.1 for a client that offers no ALPN", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request({ host: "127.0.0.1", port: server.port, path: "/healthz", ca }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(200);
  });
});
