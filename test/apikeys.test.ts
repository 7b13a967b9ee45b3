import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKey_State, ApiKeyService } from "../gen/anvil/apikeys/v1/apikeys_pb.js";
import { OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { clientFor, protocols } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { expectCode } from "./support/expect-code.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * API keys end to end, on every database: managed through ApiKeyService,
 * presented as `Authorization: Bearer` or `x-api-key` on every protocol
 * (REST and a server stream included), refused alike whatever is wrong with
 * them, never shown again after the create.
 */

const secretShape = /^anvil_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$/;

describe.each(databaseKinds)("API keys on %s", (kind) => {
  let server: TestServer;
  const keysAs = async (keyId: string) => clientFor(ApiKeyService, "connect-json", server.baseUrl, await server.token(keyId));
  /** Creates a key as `keyId` and returns it with its secret. */
  const createKey = async (keyId: string, roles: string[], extra: { expireTime?: Date; tier?: string } = {}) => {
    const { apiKey, secret } = await (await keysAs(keyId)).createApiKey({
      apiKey: { displayName: `k-${randomUUID()}`, roles, tier: extra.tier ?? "", expireTime: extra.expireTime && timestampFromDate(extra.expireTime) },
    });
    return { key: apiKey!, secret };
  };
  /** Every string a client saw must not contain `secret` (nor anything shaped like a key). */
  const neverShows = (seen: unknown, secret: string) => {
    const text = JSON.stringify(seen, (_k, v) => (typeof v === "bigint" ? String(v) : v));
    expect(text).not.toContain(secret);
    expect(text).not.toMatch(/anvil_[0-9a-f]{32}_/);
  };

  beforeAll(async () => {
    server = await startServer(kind);
  });
  afterAll(() => server?.close());

  it("returns a recognisable 256-bit secret once; get and list never show it", async () => {
    const { key, secret } = await createKey("acme-admin", ["viewer"]);
    expect(secret).toMatch(secretShape);
    expect(secret).toContain(key.id.replaceAll("-", ""));
    expect(key.state).toBe(ApiKey_State.ACTIVE);
    expect(key.tier).toBe("free");
    expect(key.creator).toBe("service_account:acme-admin");
    const admin = await keysAs("acme-admin");
    neverShows(await admin.getApiKey({ id: key.id }), secret);
    neverShows(await admin.listApiKeys({ pageSize: 1000 }), secret);
  });

  it("replays a create by request_id without the secret", async () => {
    const admin = await keysAs("acme-admin");
    const requestId = randomUUID();
    const request = { apiKey: { displayName: "replayed", roles: ["viewer"] }, requestId };
    const first = await admin.createApiKey(request);
    expect(first.secret).toMatch(secretShape);
    const again = await admin.createApiKey(request);
    expect(again.apiKey!.id).toBe(first.apiKey!.id);
    expect(again.secret).toBe("");
    neverShows(again, first.secret);
  });

  describe.each(protocols)("over %s", (protocol) => {
    it("accepts the key as Authorization: Bearer and as x-api-key, unary and streaming", async () => {
      const { secret } = await createKey("acme-admin", ["admin"]);
      const presented: Record<string, string>[] = [{ authorization: `Bearer ${secret}` }, { "x-api-key": secret }];
      for (const headers of presented) {
        const users = clientFor(UserService, protocol, server.baseUrl, headers);
        await expect(users.listUsers({})).resolves.toBeDefined();
        // A server stream authenticates too: it gets as far as the lookup (NOT_FOUND), not UNAUTHENTICATED.
        const ops = clientFor(OperationService, protocol, server.baseUrl, headers);
        await expectCode(ops.watchOperation({ id: randomUUID() })[Symbol.asyncIterator]().next(), Code.NotFound);
      }
    });
  });

  it("accepts the key over REST, as either header", async () => {
    const { secret } = await createKey("acme-admin", ["viewer"]);
    const presented: Record<string, string>[] = [{ authorization: `Bearer ${secret}` }, { "x-api-key": secret }];
    for (const headers of presented) {
      const res = await fetch(`${server.baseUrl}/v1/apiKeys`, { headers });
      // A viewer key authenticates but may not manage keys.
      expect(res.status).toBe(403);
      const ok = await fetch(`${server.baseUrl}/v1/operations`, { headers });
      expect(ok.status).toBe(200);
    }
    const created = await fetch(`${server.baseUrl}/v1/apiKeys`, {
      method: "POST",
      headers: { authorization: `Bearer ${await server.token()}`, "content-type": "application/json" },
      body: JSON.stringify({ displayName: "rest", roles: ["viewer"] }),
    });
    expect(created.status).toBe(200);
    const body = (await created.json()) as { apiKey: { id: string }; secret: string };
    expect(body.secret).toMatch(secretShape);
    const revoked = await fetch(`${server.baseUrl}/v1/apiKeys/${body.apiKey.id}:revoke`, {
      method: "POST",
      headers: { authorization: `Bearer ${await server.token()}`, "content-type": "application/json" },
      body: "{}",
    });
    expect(revoked.status).toBe(200);
    expect(((await revoked.json()) as { state: string }).state).toBe("STATE_REVOKED");
    const refused = await fetch(`${server.baseUrl}/v1/operations`, { headers: { "x-api-key": body.secret } });
    expect(refused.status).toBe(401);
    expect(await refused.text()).not.toContain(body.secret);
  });

  it("refuses every bad key with UNAUTHENTICATED and one generic message", async () => {
    const { key, secret } = await createKey("acme-admin", ["admin"]);
    const { secret: revoked, key: revokedKey } = await createKey("acme-admin", ["admin"]);
    await (await keysAs("acme-admin")).revokeApiKey({ id: revokedKey.id });
    const { secret: deleted, key: deletedKey } = await createKey("acme-admin", ["admin"]);
    await (await keysAs("acme-admin")).deleteApiKey({ id: deletedKey.id });
    const { secret: globex } = await createKey("globex-admin", ["admin"]);
    const last = secret.at(-1) === "A" ? "B" : "A";
    const bad: [string, Record<string, string>][] = [
      ["a revoked key", { "x-api-key": revoked }],
      ["a deleted key", { authorization: `Bearer ${deleted}` }],
      ["a tampered secret", { "x-api-key": `${secret.slice(0, -1)}${last}` }],
      ["an unknown key id", { "x-api-key": `anvil_${randomUUID().replaceAll("-", "")}_${secret.split("_").at(-1)}` }],
      ["another key's id on this secret", { "x-api-key": `anvil_${revokedKey.id.replaceAll("-", "")}_${secret.slice(39)}` }],
      ["a truncated key", { "x-api-key": secret.slice(0, 40) }],
      ["not a key", { "x-api-key": "hello" }],
      ["an empty x-api-key", { "x-api-key": "" }],
      ["both headers at once", { "x-api-key": secret, authorization: `Bearer ${secret}` }],
    ];
    for (const [name, headers] of bad) {
      const err = await expectCode(clientFor(UserService, "connect-json", server.baseUrl, headers).listUsers({}), Code.Unauthenticated);
      expect(err.rawMessage, name).toBe("missing or invalid credentials");
      neverShows(err, secret);
    }
    // The key itself still works, and a key of another tenant works for that tenant only.
    const acme = clientFor(ApiKeyService, "connect-json", server.baseUrl, { "x-api-key": secret });
    await expect(acme.getApiKey({ id: key.id })).resolves.toBeDefined();
    const globexKeys = clientFor(ApiKeyService, "connect-json", server.baseUrl, { "x-api-key": globex });
    await expectCode(globexKeys.getApiKey({ id: key.id }), Code.NotFound);
  });

  it("says EXPIRED once a key's expire time has passed", async () => {
    const { key, secret } = await createKey("acme-admin", ["viewer"], { expireTime: new Date(Date.now() + 1500) });
    const ops = clientFor(OperationService, "connect-json", server.baseUrl, { "x-api-key": secret });
    await expect(ops.listOperations({})).resolves.toBeDefined();
    await new Promise((r) => setTimeout(r, 1600));
    const err = await expectCode(ops.listOperations({}), Code.Unauthenticated);
    expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe("EXPIRED");
    expect((await (await keysAs("acme-admin")).getApiKey({ id: key.id })).apiKey!.state).toBe(ApiKey_State.EXPIRED);
  });

  it("refuses a revoked key at once on the instance that revoked it", async () => {
    const { key, secret } = await createKey("acme-admin", ["viewer"]);
    const ops = clientFor(OperationService, "connect-json", server.baseUrl, { authorization: `Bearer ${secret}` });
    await expect(ops.listOperations({})).resolves.toBeDefined();
    const { apiKey } = await (await keysAs("acme-admin")).revokeApiKey({ id: key.id });
    expect(apiKey!.state).toBe(ApiKey_State.REVOKED);
    const start = Date.now();
    while (await ops.listOperations({}).then(() => true, () => false)) {
      expect(Date.now() - start).toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 10));
    }
    // Revoking again returns the key unchanged.
    expect((await (await keysAs("acme-admin")).revokeApiKey({ id: key.id })).apiKey!.etag).toBe(apiKey!.etag);
  });

  it("keeps roles within the creator's, and keeps editors to their own keys", async () => {
    const editor = await keysAs("acme-editor");
    await expectCode(editor.createApiKey({ apiKey: { displayName: "x", roles: ["admin"] } }), Code.PermissionDenied);
    await expectCode(editor.createApiKey({ apiKey: { displayName: "x", roles: ["worker"] } }), Code.PermissionDenied);
    await expectCode(editor.createApiKey({ apiKey: { displayName: "x", roles: ["viewer"], tier: "pro" } }), Code.PermissionDenied);
    await expectCode((await keysAs("acme-viewer")).createApiKey({ apiKey: { displayName: "x", roles: ["viewer"] } }), Code.PermissionDenied);
    await expectCode(editor.createApiKey({ apiKey: { displayName: "x", roles: ["nobody"] } }), Code.InvalidArgument);
    // An expiry in the past, or past year 9999 (which no column or RFC 3339 holds), is refused and stores nothing.
    await expectCode(editor.createApiKey({ apiKey: { displayName: "x", roles: ["viewer"], expireTime: { seconds: 1n } } }), Code.InvalidArgument);
    // (Binary: a JSON client cannot even write such a timestamp.)
    const binaryEditor = clientFor(ApiKeyService, "connect-binary", server.baseUrl, await server.token("acme-editor"));
    await expectCode(binaryEditor.createApiKey({ apiKey: { displayName: "x", roles: ["viewer"], expireTime: { seconds: 10n ** 12n } } }), Code.InvalidArgument);
    const { key: own } = await createKey("acme-editor", ["viewer", "editor"]);
    const { key: admins } = await createKey("acme-admin", ["viewer"], { tier: "pro" });
    expect(admins.tier).toBe("pro");
    const listed = (await editor.listApiKeys({ pageSize: 1000 })).apiKeys.map((k) => k.id);
    expect(listed).toContain(own.id);
    expect(listed).not.toContain(admins.id);
    await expectCode(editor.getApiKey({ id: admins.id }), Code.NotFound);
    await expectCode(editor.revokeApiKey({ id: admins.id }), Code.NotFound);
    await expectCode(editor.deleteApiKey({ id: admins.id }), Code.NotFound);
    expect((await (await keysAs("acme-admin")).getApiKey({ id: admins.id })).apiKey!.state).toBe(ApiKey_State.ACTIVE);
    expect((await editor.revokeApiKey({ id: own.id })).apiKey!.state).toBe(ApiKey_State.REVOKED);
    // Admins see every key of the tenant.
    const all = (await (await keysAs("acme-admin")).listApiKeys({ pageSize: 1000 })).apiKeys.map((k) => k.id);
    expect(all).toEqual(expect.arrayContaining([own.id, admins.id]));
  });

  it("grants a key exactly its roles: a viewer key cannot write", async () => {
    const { secret } = await createKey("acme-admin", ["viewer"]);
    const users = clientFor(UserService, "connect-json", server.baseUrl, { "x-api-key": secret });
    await expectCode(users.createUser({ user: { email: `${randomUUID()}@example.com` } }), Code.PermissionDenied);
  });

  it("records last use", async () => {
    const { key, secret } = await createKey("acme-admin", ["viewer"]);
    expect(key.lastUsedTime).toBeUndefined();
    await clientFor(OperationService, "connect-json", server.baseUrl, { "x-api-key": secret }).listOperations({});
    const admin = await keysAs("acme-admin");
    let used: unknown;
    for (let i = 0; i < 50 && used === undefined; i++) {
      used = (await admin.getApiKey({ id: key.id })).apiKey!.lastUsedTime;
      if (used === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    expect(used).toBeDefined();
  });
});

