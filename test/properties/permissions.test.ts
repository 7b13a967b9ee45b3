// Every method × every role follows the permission the method declares in
// its proto options (`anvil.api.v1.permission`): the matrix is read from the
// descriptors, the grants from the one place that says what a role grants.
// Calls go to another tenant's data, so an allowed call must still find
// nothing of it (NOT_FOUND / empty), and a refused one PERMISSION_DENIED.
import type { JsonObject } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rolesGrant } from "../../src/auth/roles.js";
import { buildRestRoutes } from "../../src/server/rest/rest-routes.js";
import { apiServices, publicApiServices } from "../../src/server/services.js";
import { databaseKinds } from "../support/databases.js";
import { startServer, type TestServer } from "../support/server.js";
import { testKeys } from "../support/tokens.js";
import { callOver, families } from "./support/call.js";
import { declaredPermission, nameOf, readsFirst, ruleFor } from "./support/method-walk.js";
import { type TenantRows, tenantRows } from "./support/tenant-rows.js";
import { buildTenantWorld, type TenantWorld } from "./support/tenant-world.js";

const { routes } = buildRestRoutes(apiServices);
/** The methods that need a credential: public ones (SignInService) declare no permission and answer anyone. */
const guarded = readsFirst.filter((m) => !publicApiServices.has(m.parent.typeName));
/** Every role some test key holds. */
const roles = [...new Set(testKeys().flatMap((k) => k.roles))].sort();

describe.each(databaseKinds)("permissions on %s", (kind) => {
  let server: TestServer;
  let a: TenantWorld;
  let before: TenantRows;
  const tokens = new Map<string, string>();
  beforeAll(async () => {
    server = await startServer(kind);
    a = await buildTenantWorld(server, "acme-admin");
    before = await tenantRows(server, "acme");
    // Tenant B's admin key may hand out every role.
    for (const role of roles) tokens.set(role, await server.token("globex-admin", { roles: [role] }));
  }, 120_000);
  afterAll(() => server?.close());

  it("covers every role, and admin is granted every declared permission", () => {
    expect(roles).toEqual(expect.arrayContaining(["admin", "analyzer", "editor", "viewer", "worker"]));
    for (const m of guarded) expect(rolesGrant(["admin"], declaredPermission(m)), nameOf(m)).toBe(true);
  });

  it.each(guarded.map((m) => [nameOf(m), m] as const))("%s is allowed to exactly the roles its declared permission grants", async (_name, method) => {
    const permission = declaredPermission(method);
    expect(permission, `${nameOf(method)} declares no permission`).toMatch(/^[a-z][a-z_]*\.[a-z]+$/);
    const rule = ruleFor(method);
    const [request] = rule.foreign(a) as JsonObject[];
    const problems: string[] = [];
    for (const [i, role] of roles.entries()) {
      // Each role over another family, so that every family enforces permissions.
      let family = families[(i + guarded.indexOf(method)) % families.length]!;
      if (family === "rest" && method.methodKind === "server_streaming") family = "grpc";
      const answer = await callOver(family, server.baseUrl, tokens.get(role)!, method, request!, routes);
      const expected = rolesGrant([role], permission) ? rule.foreignCodes : ["permission_denied"];
      if (!expected.includes(answer.code)) problems.push(`${role} over ${family}: ${answer.code} ${answer.message ?? ""} (expected ${expected.join("|")}; needs ${permission})`);
    }
    expect(problems).toEqual([]);
    expect(await tenantRows(server, "acme"), "tenant A's rows changed").toEqual(before);
  });
});
