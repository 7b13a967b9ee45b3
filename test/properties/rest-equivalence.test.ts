// Every google.api.http route, called as a REST client would call it — path
// variables in the path and not in the body, the body as annotated, the rest
// in the query — answers what the same call over Connect JSON answers: the
// same code and the same message (its `response_body` field), but for the
// ids, times and etags two separate creations cannot share.
import { randomUUID } from "node:crypto";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildRestRoutes } from "../../src/server/rest/rest-routes.js";
import { OperationService } from "../../gen/anvil/operations/v1/operations_pb.js";
import { artifactHttpMethods } from "../../src/server/artifacts/artifact-routes.js";
import { servedAsJsonLines } from "../../src/server/rest/rest-stream.js";
import { sseBindings } from "../../src/server/sse/watch-operation-sse.js";
import { apiServices } from "../../src/server/services.js";
import { databaseKinds } from "../support/databases.js";
import { startServer, type TestServer } from "../support/server.js";
import { callRest, callRpc } from "./support/call.js";
import { apiMethods, nameOf, ruleFor } from "./support/method-walk.js";
import { type OwnClients, ownClients } from "./support/own-clients.js";

const { routes, unannotated } = buildRestRoutes(apiServices);

/** `json` with what differs between two creations replaced by placeholders. */
function comparable(json: JsonValue | undefined, seed: string): JsonValue | undefined {
  if (typeof json === "string") {
    return json
      .replaceAll(seed, "<seed>")
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, "<id>")
      .replace(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/, "<time>");
  }
  if (Array.isArray(json)) return json.map((x) => comparable(x, seed)!);
  if (json !== null && typeof json === "object") {
    return Object.fromEntries(
      Object.entries(json)
        // Etags and fingerprints hash what differs; lease and page tokens and secrets are minted per call.
        .filter(([k]) => !["etag", "fingerprint", "leaseToken", "secret"].includes(k))
        .map(([k, x]) => [k, k === "nextPageToken" ? (x ? "<token>" : x) : comparable(x, seed)!]),
    );
  }
  return json;
}

describe.each(databaseKinds)("REST answers as Connect JSON does on %s", (kind) => {
  let server: TestServer;
  let own: OwnClients;
  let token: string;
  beforeAll(async () => {
    server = await startServer(kind);
    own = await ownClients(server);
    token = await server.token("acme-admin");
  });
  afterAll(() => server?.close());

  it("every method has a route", () => {
    // The artifact streams have plain HTTP routes of their own (raw bytes, not JSON): test/artifacts.test.ts.
    expect(unannotated.filter((m) => !artifactHttpMethods.has(m)).map(nameOf)).toEqual([]);
    expect(new Set(routes.map((r) => r.method))).toEqual(new Set(apiMethods.filter((m) => !artifactHttpMethods.has(m))));
  });

  it.each(routes.map((r) => [`${r.httpMethod} ${r.template.source}`, r] as const))("%s", async (_name, route) => {
    const rule = ruleFor(route.method);
    const restSeed = `r${randomUUID().slice(0, 8)}`;
    const rest = await callRest(server.baseUrl, token, route, await rule.valid(own, restSeed));
    if (servedAsJsonLines(route)) {
      // A stream whose route names a repeated response_body is served as JSON Lines: one item per line.
      expect(rest.code, rest.message).toBe("ok");
      expect(Array.isArray(rest.json)).toBe(true);
      return;
    }
    if (sseBindings.has(route.method)) {
      // A streaming GET served as server-sent events: it opens with the resource as it is, as the RPC's first message.
      expect(rest.code, rest.message).toBe("ok");
      const first = rest.json as JsonObject;
      expect(first.event).toBe("operation");
      const connect = await callRpc("connect-json", server.baseUrl, token, OperationService.method.getOperation, { id: (first.data as JsonObject).id! });
      expect(connect.code, connect.message).toBe("ok");
      expect((first.data as JsonObject).id).toBe(((connect.json as JsonObject).operation as JsonObject).id);
      return;
    }
    if (route.method.methodKind === "server_streaming") {
      // A stream has no single JSON reply: REST says so instead of answering half of it.
      expect(rest.code, rest.message).toBe("unimplemented");
      return;
    }
    const connectSeed = `c${randomUUID().slice(0, 8)}`;
    const connect = await callRpc("connect-json", server.baseUrl, token, route.method, await rule.valid(own, connectSeed));
    expect(connect.code, `Connect JSON: ${connect.message}`).toBe("ok");
    expect(rest.code, `REST: ${rest.message}`).toBe("ok");
    const whole = connect.json as JsonObject;
    const expected = route.responseBody ? (whole[route.responseBody.jsonName] ?? (route.responseBody.fieldKind === "list" ? [] : {})) : whole;
    expect(comparable(rest.json, restSeed)).toEqual(comparable(expected, connectSeed));
  });
});
