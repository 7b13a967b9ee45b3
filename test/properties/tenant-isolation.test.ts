// Tenant isolation over every method of every service: tenant B's admin,
// given tenant A's ids, filters, page tokens, request ids and task leases,
// over every protocol family, finds nothing of A's and changes nothing of A's.
// The methods come from the descriptors; a method without a rule fails.
import type { JsonObject } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildRestRoutes } from "../../src/server/rest/rest-routes.js";
import { apiServices } from "../../src/server/services.js";
import { databaseKinds } from "../support/databases.js";
import { startServer, type TestServer } from "../support/server.js";
import { callOver, families } from "./support/call.js";
import { methodRules } from "./support/method-rules.js";
import { markersOf, nameOf, readsFirst, ruleFor, substance } from "./support/method-walk.js";
import { type TenantRows, tenantRows } from "./support/tenant-rows.js";
import { buildTenantWorld, type TenantWorld } from "./support/tenant-world.js";

const { routes } = buildRestRoutes(apiServices);

describe.each(databaseKinds)("tenant isolation on %s", (kind) => {
  let server: TestServer;
  let a: TenantWorld;
  let before: TenantRows;
  let markers: Set<string>;
  let tokenB: string;

  beforeAll(async () => {
    server = await startServer(kind);
    a = await buildTenantWorld(server, "acme-admin");
    before = await tenantRows(server, "acme");
    markers = markersOf(before, a.tag);
    tokenB = await server.token("globex-admin");
  }, 120_000);
  afterAll(() => server?.close());

  it("has a rule for every served method and none for a method no longer served", () => {
    const served = new Set(readsFirst.map((m) => m.name));
    expect(served.size, "method names must be unique across services: rules are keyed by them").toBe(readsFirst.length);
    expect(Object.keys(methodRules).filter((name) => !served.has(name))).toEqual([]);
  });

  it.each(readsFirst.map((m) => [nameOf(m), m] as const))("%s, called by tenant B with A's data, shows and changes nothing of A's", async (_name, method) => {
    const rule = ruleFor(method);
    const problems: string[] = [];
    // Per request: the code and error message each family answered, which must agree.
    const outcomes = new Map<string, Set<string>>();
    for (const family of families) {
      // REST refuses server streams whoever calls (see the REST equivalence property).
      if (family === "rest" && method.methodKind === "server_streaming") continue;
      for (const request of rule.foreign(a) as JsonObject[]) {
        const answer = await callOver(family, server.baseUrl, tokenB, method, request, routes);
        const where = `${family} ${JSON.stringify(request)}`;
        const seen = outcomes.get(JSON.stringify(request)) ?? new Set<string>();
        outcomes.set(JSON.stringify(request), seen.add(`${answer.code} ${answer.message ?? ""}`));
        if (!rule.foreignCodes.includes(answer.code)) problems.push(`${where}: ${answer.code} ${answer.message ?? ""} (expected ${rule.foreignCodes.join("|")})`);
        if (answer.code === "ok" && rule.foreignEmpty) {
          const found = substance(answer.json);
          if (found.length) problems.push(`${where}: answered with ${found.join(", ")}`);
        }
        // The answer may repeat what B sent, never anything else of A's.
        const sent = JSON.stringify(request);
        const text = `${JSON.stringify(answer.json ?? null)} ${answer.message ?? ""}`;
        // (A string holding A's tag may be derived from B's own words when B sent the tag.)
        const leaked = [...markers].filter((m) => text.includes(m) && !sent.includes(m) && !(m.includes(a.tag) && sent.includes(a.tag)));
        if (leaked.length) problems.push(`${where}: answer holds A's ${leaked.join(", ")}`);
      }
    }
    for (const [request, seen] of outcomes) if (seen.size > 1) problems.push(`${request}: the families disagree: ${[...seen].join(" / ")}`);
    expect(problems).toEqual([]);
    expect(await tenantRows(server, "acme"), "tenant A's rows changed").toEqual(before);
  });
});
