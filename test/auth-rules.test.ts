// The pure rules of src/auth, against tables written here rather than derived
// from the code they test: which role grants which permission (the
// permissions property derives its expectations from rolesGrant, so it cannot
// catch a wrong grant), and which credential a refused call's headers claim
// (audit files refusals under that credential's tenant). Found by `npm run
// mutate`: these mutants survived every suite.
import { describe, expect, it } from "vitest";
import { header } from "../src/auth/authenticator.js";
import { claimedCredential } from "../src/auth/credential-claim.js";
import { rolesCover, rolesGrant } from "../src/auth/roles.js";
import { apiMethods, declaredPermission } from "./properties/support/method-walk.js";

// role → the declared permissions it grants; every other one it refuses.
const expected: Record<string, readonly string[]> = {
  admin: ["*"],
  editor: [
    "agents.read", "agents.write", "apikeys.manage", "findings.create", "findings.read", "findings.write",
    "ipas.read", "ipas.write", "operations.read", "operations.write", "workflows.read", "workflows.write",
  ],
  viewer: ["agents.read", "findings.read", "ipas.read", "operations.read", "workflows.read"],
  analyzer: ["findings.create", "findings.read"],
  worker: ["tasks.work"],
};

describe("roles", () => {
  const declared = [...new Set(apiMethods.map(declaredPermission).filter((p) => p !== ""))].sort();

  it("grant exactly the permissions of the table, for every permission the protos declare", () => {
    expect(declared).toEqual(expect.arrayContaining(["audit.read", "users.read", "users.write", "tasks.work"]));
    for (const [role, granted] of Object.entries(expected)) {
      for (const p of declared) expect(rolesGrant([role], p), `${role} ${p}`).toBe(granted[0] === "*" || granted.includes(p));
    }
  });

  it("grant by action suffix only: a permission that merely contains read or write is not granted", () => {
    for (const p of ["workflows.reader", "ipas.write_all", "findings.created", "agents.readonly"]) {
      expect(rolesGrant(["editor"], p), p).toBe(false);
      expect(rolesGrant(["viewer"], p), p).toBe(false);
    }
    // Prefixes are admin-only, wherever else the word appears.
    expect(rolesGrant(["viewer"], "reports.audit.read")).toBe(true);
    expect(rolesGrant(["editor", "viewer"], "audit.read")).toBe(false);
  });

  it("of a caller holding several roles grant what any one of them grants; unknown names grant nothing", () => {
    expect(rolesGrant(["analyzer", "viewer"], "workflows.read")).toBe(true);
    expect(rolesGrant(["worker", "analyzer"], "tasks.work")).toBe(true);
    expect(rolesGrant(["superuser", "root"], "workflows.read")).toBe(false);
    expect(rolesGrant(["toString", "constructor"], "workflows.read")).toBe(false);
    expect(rolesGrant([], "workflows.read")).toBe(false);
  });

  it("cover the roles a key may hand out: each claimed role by some held role", () => {
    expect(rolesCover(["admin"], ["admin", "editor", "viewer", "analyzer", "worker"])).toBe(true);
    expect(rolesCover(["editor"], ["viewer", "analyzer"])).toBe(true);
    expect(rolesCover(["editor"], ["worker"])).toBe(false);
    expect(rolesCover(["viewer", "worker"], ["viewer", "worker"])).toBe(true);
    expect(rolesCover(["viewer"], ["viewer", "editor"])).toBe(false);
    expect(rolesCover(["superuser"], ["viewer"])).toBe(false);
    expect(rolesCover(["admin"], ["superuser"])).toBe(false);
  });
});

const keyHex = "0123456789abcdef0123456789abcdef";
const keyId = "01234567-89ab-cdef-0123-456789abcdef";
const apiKey = `anvil_${keyHex}_${"A".repeat(43)}`;
/** A compact JWS whose protected header holds `header` (nothing is verified). */
const jws = (h: object) => `${Buffer.from(JSON.stringify({ alg: "EdDSA", ...h })).toString("base64url")}.e30.c2ln`;

describe("claimedCredential", () => {
  it("reads an API key's embedded id from x-api-key or a bearer token, trimmed", () => {
    expect(claimedCredential({ "x-api-key": `  ${apiKey} ` })).toEqual({ kind: "api_key", id: keyId });
    expect(claimedCredential(new Headers({ authorization: `Bearer ${apiKey}` }))).toEqual({ kind: "api_key", id: keyId });
    expect(claimedCredential({ "x-api-key": "anvil_not-a-key" })).toBeUndefined();
  });

  it("reads a JWT's kid from a Bearer header, in any case and with any spaces, and nothing else", () => {
    const token = jws({ kid: "ci-key" });
    const claim = { kind: "service_account", id: "ci-key" };
    expect(claimedCredential({ authorization: `Bearer ${token}` })).toEqual(claim);
    expect(claimedCredential({ authorization: ` bearer   ${token}  ` })).toEqual(claim);
    expect(claimedCredential(new Headers({ authorization: `BEARER ${token}` }))).toEqual(claim);
    for (const authorization of [`Basic ${token}`, `xBearer ${token}`, `Bearer ${token} extra`, `Bearer`, token, ""]) {
      expect(claimedCredential({ authorization }), authorization).toBeUndefined();
    }
  });

  it("claims nothing for a kid that is missing, not a string or longer than 200, or a token that is not a JWS", () => {
    expect(claimedCredential({ authorization: `Bearer ${jws({ kid: "k".repeat(200) })}` })).toEqual({ kind: "service_account", id: "k".repeat(200) });
    expect(claimedCredential({ authorization: `Bearer ${jws({ kid: "k".repeat(201) })}` })).toBeUndefined();
    expect(claimedCredential({ authorization: `Bearer ${jws({ kid: 7 })}` })).toBeUndefined();
    expect(claimedCredential({ authorization: `Bearer ${jws({})}` })).toBeUndefined();
    expect(claimedCredential({ authorization: "Bearer not.a.jws" })).toBeUndefined();
  });

  it("prefers x-api-key to Authorization, takes a repeated header's first value, and claims nothing without either", () => {
    expect(claimedCredential({ "x-api-key": apiKey, authorization: `Bearer ${jws({ kid: "ci-key" })}` })).toEqual({ kind: "api_key", id: keyId });
    expect(claimedCredential({ authorization: [`Bearer ${jws({ kid: "first" })}`, `Bearer ${jws({ kid: "second" })}`] })).toEqual({ kind: "service_account", id: "first" });
    expect(claimedCredential({})).toBeUndefined();
    expect(claimedCredential({ authorization: undefined })).toBeUndefined();
    expect(claimedCredential(new Headers())).toBeUndefined();
  });
});

describe("header", () => {
  it("reads fetch Headers and Node's header records alike, joining repeated values", () => {
    expect(header(new Headers({ "x-a": "1" }), "x-a")).toBe("1");
    expect(header(new Headers(), "x-a")).toBeUndefined();
    expect(header({ "x-a": ["1", "2"] }, "x-a")).toBe("1, 2");
    expect(header({ "x-a": "1" }, "x-a")).toBe("1");
    expect(header({ "x-a": undefined }, "x-a")).toBeUndefined();
    expect(header({}, "x-a")).toBeUndefined();
  });
});
