// Idempotency over every method whose request has a `request_id`, found in
// the descriptors: a retry answers the first result and creates nothing; the
// same id with another body is refused and creates nothing either.
import { randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseKinds } from "../support/databases.js";
import { startServer, type TestServer } from "../support/server.js";
import { callRpc } from "./support/call.js";
import { apiMethods, hasRequestId, nameOf, ruleFor } from "./support/method-walk.js";
import { type OwnClients, ownClients } from "./support/own-clients.js";
import { rowCounts, tenantRows } from "./support/tenant-rows.js";

const idempotent = apiMethods.filter(hasRequestId);

describe.each(databaseKinds)("idempotency on %s", (kind) => {
  let server: TestServer;
  let own: OwnClients;
  let token: string;
  beforeAll(async () => {
    server = await startServer(kind);
    own = await ownClients(server);
    token = await server.token("acme-admin");
  });
  afterAll(() => server?.close());

  it("finds the methods with a request_id in the descriptors", () => {
    expect(idempotent.length).toBeGreaterThan(0);
  });

  it.each(idempotent.map((m) => [nameOf(m), m] as const))("%s answers a retry with its first result, creates nothing more, and refuses the id with another body", async (_name, method) => {
    const rule = ruleFor(method);
    expect(rule.vary, `${nameOf(method)} has a request_id: its rule needs vary()`).toBeDefined();
    const seed = `i${randomUUID().slice(0, 8)}`;
    const request: JsonObject = { ...(await rule.valid(own, seed)), requestId: randomUUID() };
    const other = await rule.vary!(own, request, seed);
    expect(other, "vary() must change the body").not.toEqual(request);

    const first = await callRpc("connect-json", server.baseUrl, token, method, request);
    expect(first.code, first.message).toBe("ok");
    const afterFirst = rowCounts(await tenantRows(server, "acme"));

    const omitted = new Set(rule.retryOmits ?? []);
    const firstJson = first.json as JsonObject;
    const expected = { code: "ok", json: Object.fromEntries(Object.entries(firstJson).filter(([k]) => !omitted.has(k))) };
    for (const k of omitted) expect(firstJson[k], `the first answer carries ${k}`).toBeTruthy();

    const retry = await callRpc("connect-json", server.baseUrl, token, method, request);
    expect(retry).toEqual(expected);
    // A retry over another protocol is the same retry.
    const binary = await callRpc("connect-binary", server.baseUrl, token, method, request);
    expect(binary).toEqual(expected);
    expect(rowCounts(await tenantRows(server, "acme")), "a retry created rows").toEqual(afterFirst);

    const refused = await callRpc("connect-json", server.baseUrl, token, method, other);
    expect(refused.code, refused.message).toBe("invalid_argument");
    expect(rowCounts(await tenantRows(server, "acme")), "a refused body created rows").toEqual(afterFirst);
  });
});
