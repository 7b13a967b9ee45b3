import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { generateKeyPair, SignJWT } from "jose";
import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";
import { type TestKey, unsignedToken } from "./support/tokens.js";

/**
 * Every way a bearer token can be wrong, against a real listening server on
 * every database, over Connect JSON and gRPC: each is refused with its exact
 * code, the message gives nothing away (no jose internals, no secret), and
 * the role matrix of UserService holds.
 */

type AuthProtocol = "connect-json" | "grpc";
const authProtocols: AuthProtocol[] = ["connect-json", "grpc"];

/** A transport that sends `authorization` verbatim (or no header at all). */
function rawTransport(protocol: AuthProtocol, baseUrl: string, authorization: string | undefined): Transport {
  const interceptors: Interceptor[] =
    authorization === undefined ? [] : [(next) => (req) => { req.header.set("authorization", authorization); return next(req); }];
  return protocol === "grpc"
    ? createGrpcTransport({ baseUrl, interceptors })
    : createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, interceptors });
}

async function codeOf(promise: Promise<unknown>): Promise<ConnectError | undefined> {
  return promise.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
}

const now = () => Math.floor(Date.now() / 1000);

/** Signs a token with the key's secret and exactly the claims given (none are added). */
function signRaw(key: TestKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256", kid: key.key_id, ...header }).sign(Buffer.from(key.secret, "base64url"));
}

// Words only jose's own error messages contain; none may reach a client.
// (jose says e.g. `"exp" claim timestamp check failed`, `signature verification failed`,
// `"alg" (Algorithm) Header Parameter value not allowed`, `missing required "sub" claim`.)
const joseWords = /JWS|JWT|jose|"(exp|nbf|iat|sub|alg|kid)"|signature verification|timestamp check|Header Parameter|Compact|ERR_J/i;

describe.each(databaseKinds)("authentication on %s", (kind) => {
  let server: TestServer;
  let rsaToken: string;
  beforeAll(async () => {
    server = await startServer(kind);
    const { privateKey } = await generateKeyPair("RS256");
    rsaToken = await new SignJWT({ tenant: "acme", roles: ["admin"] })
      .setProtectedHeader({ alg: "RS256", kid: "acme-admin" })
      .setSubject("mallory")
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(privateKey);
  });
  afterAll(() => server?.close());

  const key = (id: string) => server.keys[id]!;

  // Each case yields the Authorization header to send (undefined: none).
  const unauthenticated: [string, () => Promise<string | undefined>][] = [
    ["no Authorization header", async () => undefined],
    ["an empty Authorization header", async () => ""],
    ["a Basic scheme", async () => `Basic ${Buffer.from("acme-admin:secret").toString("base64")}`],
    ["a token without the Bearer scheme", async () => server.token()],
    ["Bearer with nothing after it", async () => "Bearer "],
    ["a garbled token", async () => "Bearer not-a-jwt"],
    ["three garbled segments", async () => "Bearer aaaa.bbbb.cccc"],
    ["a token with a trailing second token", async () => `Bearer ${await server.token()} ${await server.token()}`],
    ["an unknown kid", async () => `Bearer ${await server.token("acme-admin", { kid: "nobody" })}`],
    ["a missing kid", async () => {
      const k = key("acme-admin");
      return `Bearer ${await new SignJWT({ tenant: "acme", roles: ["admin"] }).setProtectedHeader({ alg: "HS256" }).setSubject("x").setIssuedAt().setExpirationTime("1h").sign(Buffer.from(k.secret, "base64url"))}`;
    }],
    ["a signature made with another secret", async () => `Bearer ${await server.token("acme-admin", { secret: randomBytes(32) })}`],
    ["another key's kid on this key's signature", async () => `Bearer ${await server.token("acme-admin", { kid: "globex-admin", tenant: "acme" })}`],
    ["a tampered payload", async () => {
      const [h, , s] = (await server.token("acme-viewer")).split(".");
      const payload = Buffer.from(JSON.stringify({ sub: "x", tenant: "acme", roles: ["viewer"], iat: now(), exp: now() + 9999 })).toString("base64url");
      return `Bearer ${h}.${payload}.${s}`;
    }],
    ["alg none", async () => `Bearer ${unsignedToken(key("acme-admin"))}`],
    ["HS512 with the key's own secret", async () => `Bearer ${await server.token("acme-admin", { alg: "HS512" })}`],
    ["RS256 signed with a foreign RSA key", async () => `Bearer ${rsaToken}`],
    ["an expired token (beyond the skew)", async () => `Bearer ${await server.token("acme-admin", { ttl: -120 })}`],
    ["nbf in the future (beyond the skew)", async () => `Bearer ${await server.token("acme-admin", { notBefore: 120 })}`],
    ["iat in the future (beyond the skew)", async () =>
      `Bearer ${await signRaw(key("acme-admin"), { sub: "x", tenant: "acme", roles: ["admin"], iat: now() + 300, exp: now() + 3600 })}`],
    ["a token of an expired key", async () => `Bearer ${await server.token("acme-expired")}`],
    ["a tenant claim different from the key's", async () => `Bearer ${await server.token("acme-admin", { tenant: "globex" })}`],
    ["no tenant claim", async () => `Bearer ${await signRaw(key("acme-admin"), { sub: "x", roles: ["admin"], iat: now(), exp: now() + 60 })}`],
    ["no sub claim", async () => `Bearer ${await signRaw(key("acme-admin"), { tenant: "acme", roles: ["admin"], iat: now(), exp: now() + 60 })}`],
    ["no exp claim", async () => `Bearer ${await signRaw(key("acme-admin"), { sub: "x", tenant: "acme", roles: ["admin"], iat: now() })}`],
    ["no iat claim", async () => `Bearer ${await signRaw(key("acme-admin"), { sub: "x", tenant: "acme", roles: ["admin"], exp: now() + 60 })}`],
    ["a roles claim that is a string", async () =>
      `Bearer ${await signRaw(key("acme-admin"), { sub: "x", tenant: "acme", roles: "admin", iat: now(), exp: now() + 60 })}`],
    ["a token living longer than the 24 h maximum", async () => `Bearer ${await server.token("acme-admin", { ttl: 25 * 3600 })}`],
    ["a roles claim with a number", async () =>
      `Bearer ${await signRaw(key("acme-admin"), { sub: "x", tenant: "acme", roles: [1], iat: now(), exp: now() + 60 })}`],
  ];

  const beyondGrant: [string, string, string[]][] = [
    ["a viewer key claiming admin", "acme-viewer", ["admin"]],
    ["an editor key claiming admin", "acme-editor", ["admin"]],
    ["a viewer key claiming editor next to viewer", "acme-viewer", ["viewer", "editor"]],
    ["an analyzer key claiming worker", "acme-analyzer", ["worker"]],
    ["an admin key claiming an unknown role", "acme-admin", ["superuser"]],
  ];

  describe.each(authProtocols)("over %s", (protocol) => {
    const client = (authorization: string | undefined): Client<typeof UserService> =>
      createClient(UserService, rawTransport(protocol, server.baseUrl, authorization));
    const secrets = () => Object.values(server.keys).map((k) => k.secret);

    /** Asserts the code and that the message leaks neither jose internals nor a secret. */
    const expectRefused = (err: ConnectError | undefined, code: Code) => {
      expect(err, `expected ${Code[code]}`).toBeInstanceOf(ConnectError);
      expect(Code[err!.code]).toBe(Code[code]);
      expect(err!.rawMessage).not.toMatch(joseWords);
      // One generic message for every bad credential: a prober learns nothing about which check failed.
      if (code === Code.Unauthenticated) expect(err!.rawMessage).toBe("missing or invalid credentials");
      for (const secret of secrets()) expect(err!.rawMessage).not.toContain(secret);
    };

    it.each(unauthenticated)("refuses %s with UNAUTHENTICATED", async (_name, authorization) => {
      const header = await authorization();
      expectRefused(await codeOf(client(header).listUsers({})), Code.Unauthenticated);
      // Writes are refused the same way, and nothing is created.
      expectRefused(await codeOf(client(header).createUser({ user: { email: `${randomUUID()}@example.com` } })), Code.Unauthenticated);
    });

    it.each(beyondGrant)("refuses %s with PERMISSION_DENIED", async (_name, keyId, roles) => {
      const token = await server.token(keyId, { roles });
      expectRefused(await codeOf(client(`Bearer ${token}`).listUsers({})), Code.PermissionDenied);
    });

    it("says EXPIRED in ErrorInfo for an expired token or key, and nothing finer for the rest", async () => {
      const reason = async (authorization: string) =>
        (await codeOf(client(authorization).listUsers({})))!.findDetails(ErrorInfoSchema)[0]?.reason;
      expect(await reason(`Bearer ${await server.token("acme-admin", { ttl: -120 })}`)).toBe("EXPIRED");
      expect(await reason(`Bearer ${await server.token("acme-expired")}`)).toBe("EXPIRED");
      expect(await reason(`Bearer ${await server.token("acme-admin", { kid: "nobody" })}`)).toBe("UNAUTHENTICATED");
    });

    it("accepts a token that expired within the clock skew, and one not yet valid within it", async () => {
      const recent = await server.token("acme-admin", { ttl: -10 });
      await expect(client(`Bearer ${recent}`).listUsers({})).resolves.toBeDefined();
      const soon = await server.token("acme-admin", { notBefore: 10 });
      await expect(client(`Bearer ${soon}`).listUsers({})).resolves.toBeDefined();
    });

    it("accepts the scheme case-insensitively and a key claiming fewer roles than it holds", async () => {
      await expect(client(`bearer ${await server.token()}`).listUsers({})).resolves.toBeDefined();
      const viewerOnly = await server.token("acme-admin", { roles: ["viewer"] });
      // An admin key may mint a viewer token; that token then cannot read users.
      expectRefused(await codeOf(client(`Bearer ${viewerOnly}`).listUsers({})), Code.PermissionDenied);
    });

    it("created nothing through any refused call", async () => {
      const admin = clientFor(UserService, protocol, server.baseUrl, await server.token());
      const { users } = await admin.listUsers({ pageSize: 1000 });
      expect(users).toEqual([]);
    });
  });

  describe("role matrix on UserService", () => {
    const emails: string[] = [];
    const as = async (keyId: string) => clientFor(UserService, "connect-json", server.baseUrl, await server.token(keyId));

    it("lets admin read and write users", async () => {
      const admin = await as("acme-admin");
      const email = `matrix-${randomUUID()}@example.com`;
      const { user } = await admin.createUser({ user: { email, roles: ["viewer"] } });
      emails.push(email);
      expect((await admin.getUser({ id: user!.id })).user?.email).toBe(email);
      expect((await admin.listUsers({})).users.map((u) => u.email)).toContain(email);
    });

    it.each(["acme-editor", "acme-viewer", "acme-analyzer", "acme-worker"])("denies %s reading and writing users", async (keyId) => {
      const admin = await as("acme-admin");
      const { users } = await admin.listUsers({ pageSize: 1000 });
      const target = users[0]!;
      const denied = await as(keyId);
      // Thunks, not promises: a call must not start (and reject unobserved) before it is awaited.
      for (const call of [
        () => denied.listUsers({}),
        () => denied.getUser({ id: target.id }),
        () => denied.createUser({ user: { email: `${keyId}-${randomUUID()}@example.com` } }),
        () => denied.updateUser({ user: { id: target.id, displayName: "hijacked" }, updateMask: { paths: ["display_name"] } }),
        () => denied.deleteUser({ id: target.id }),
      ]) {
        const err = await codeOf(call());
        expect(err).toBeInstanceOf(ConnectError);
        expect(Code[err!.code]).toBe(Code[Code.PermissionDenied]);
      }
      // Nothing changed: the same users, each with the same etag.
      expect((await admin.listUsers({ pageSize: 1000 })).users).toEqual(users);
    });

    it("lets admin update and delete users", async () => {
      const admin = await as("acme-admin");
      const { users } = await admin.listUsers({ pageSize: 1000 });
      const target = users.find((u) => u.email === emails[0])!;
      const { user } = await admin.updateUser({ user: { id: target.id, displayName: "renamed", etag: target.etag }, updateMask: { paths: ["display_name"] } });
      expect(user?.displayName).toBe("renamed");
      await admin.deleteUser({ id: target.id, etag: user!.etag });
      const err = await codeOf(admin.getUser({ id: target.id }));
      expect(err?.code).toBe(Code.NotFound);
    });
  });
});
