// The pure rules of src/auth, against tables written here rather than derived
// from the code they test: which role grants which permission (the
// permissions property derives its expectations from rolesGrant, so it cannot
// catch a wrong grant), and which credential a refused call's headers claim
// (audit files refusals under that credential's tenant). Found by `npm run
// mutate`: these mutants survived every suite.
import { describe, expect, it } from "vitest";
import { Authenticator, type CredentialVerifier, header, type OidcTokenVerifier } from "../src/auth/authenticator.js";
import { claimedCredential } from "../src/auth/credential-claim.js";
import type { Principal } from "../src/auth/principal.js";
import { rolesCover, rolesGrant } from "../src/auth/roles.js";
import type { TokenVerifier } from "../src/auth/token-verifier.js";
import { UnauthenticatedError } from "../src/shared/errors.js";
import { apiMethods, declaredPermission } from "./properties/support/method-walk.js";

// role → the declared permissions it grants; every other one it refuses.
const expected: Record<string, readonly string[]> = {
  admin: ["*"],
  editor: [
    "agents.read", "agents.write", "apikeys.manage", "findings.create", "findings.read", "findings.write",
    "ipas.read", "ipas.write", "operations.read", "operations.write", "webhooks.read", "webhooks.write",
    "workflows.read", "workflows.write",
  ],
  viewer: ["agents.read", "findings.read", "ipas.read", "operations.read", "webhooks.read", "workflows.read"],
  analyzer: ["findings.create", "findings.read"],
  worker: ["tasks.work"],
};

describe("roles", () => {
  const declared = [...new Set(apiMethods.map(declaredPermission).filter((p) => p !== ""))].sort();

  it("grant exactly the permissions of the table, for every permission the protos declare", () => {
    expect(declared).toEqual(expect.arrayContaining(["audit.read", "users.read", "users.write", "tasks.work"]));
    for (const [role, granted] of Object.entries(expected)) {
      // Every role may ask who it is (IdentityService.GetCaller).
      for (const p of declared) expect(rolesGrant([role], p), `${role} ${p}`).toBe(granted[0] === "*" || granted.includes(p) || p === "identity.read");
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
    expect(claimedCredential({ authorization: `Bearer ${jws({ kid: ["ci-key"] })}` })).toBeUndefined();
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

/** A verifier that knows `known` credentials (cached ones in `cache`) and records what it was asked. */
function verifier(kind: string, known: readonly string[], cache: readonly string[] = []) {
  const asked: string[] = [];
  const principal = (c: string): Principal => ({
    subject: `${kind}:${c}`,
    tenant: "t",
    roles: [],
    credential: { kind: "service_account", id: c },
    tier: "free",
  });
  return {
    asked,
    cached: (c: string) => (cache.includes(c) ? principal(c) : undefined),
    verify: async (c: string) => {
      asked.push(c);
      if (!known.includes(c)) throw new Error(`${kind} refuses ${c}`);
      return principal(c);
    },
    claims: (c: string) => c.startsWith("oidc."),
  };
}

/** The reason an Authenticator gave for refusing (the client sees only UNAUTHENTICATED). */
async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err?.name).toBe("UnauthenticatedError");
  return ((err as Error).cause as Error).message;
}

describe("Authenticator dispatch", () => {
  const setup = (options: { apiKeys?: boolean } = {}) => {
    const serviceAccounts = verifier("sa", ["sa.tok"], ["sa.cached"]);
    const apiKeys = verifier("key", [apiKey], [apiKey]);
    const oidc = verifier("oidc", ["oidc.tok"], ["oidc.cached"]);
    const auth = new Authenticator({
      serviceAccounts: serviceAccounts as unknown as TokenVerifier,
      ...(options.apiKeys === false ? {} : { apiKeys: apiKeys as CredentialVerifier }),
      oidc: { ...oidc, issuer: "https://idp.example" } as OidcTokenVerifier,
    });
    return { auth, serviceAccounts, apiKeys, oidc };
  };

  it("sends each credential to its verifier: API keys trimmed, bearer tokens in any case, cached ones without verifying", async () => {
    const { auth, serviceAccounts, apiKeys, oidc } = setup();
    expect((await auth.authenticate({ "x-api-key": ` ${apiKey}  ` })).subject).toBe(`key:${apiKey}`);
    expect((await auth.authenticate({ authorization: `Bearer ${apiKey}` })).subject).toBe(`key:${apiKey}`);
    expect((await auth.authenticate({ authorization: " bearer   sa.tok " })).subject).toBe("sa:sa.tok");
    expect((await auth.authenticate({ authorization: "Bearer oidc.tok" })).subject).toBe("oidc:oidc.tok");
    expect((await auth.authenticate({ authorization: "Bearer sa.cached" })).subject).toBe("sa:sa.cached");
    expect((await auth.authenticate({ authorization: "Bearer oidc.cached" })).subject).toBe("oidc:oidc.cached");
    expect(apiKeys.asked).toEqual([apiKey, apiKey]);
    expect(serviceAccounts.asked).toEqual(["sa.tok"]);
    expect(oidc.asked).toEqual(["oidc.tok"]);
  });

  it("refuses two credentials at once, API keys when they are off, and a malformed Authorization header", async () => {
    const { auth } = setup();
    expect(await refusal(auth.authenticate({ "x-api-key": apiKey, authorization: "Bearer sa.tok" }))).toBe("both x-api-key and Authorization sent");
    expect(await refusal(setup({ apiKeys: false }).auth.authenticate({ "x-api-key": apiKey }))).toBe("API keys are not enabled");
    for (const authorization of [undefined, "Basic sa.tok", "xBearer sa.tok", "Bearer sa.tok extra", "Bearer", "Bearer a/b"]) {
      expect(await refusal(auth.authenticate({ authorization })), String(authorization)).toBe("missing or malformed Authorization: Bearer header");
    }
  });

  it("answers from its caches alone, and nothing for a credential not cached or a malformed header", () => {
    const { auth, serviceAccounts, apiKeys, oidc } = setup();
    expect(auth.cached({ "x-api-key": ` ${apiKey} ` })?.subject).toBe(`key:${apiKey}`);
    expect(auth.cached(new Headers({ authorization: `bearer  ${apiKey} ` }))?.subject).toBe(`key:${apiKey}`);
    expect(auth.cached({ authorization: "Bearer sa.cached" })?.subject).toBe("sa:sa.cached");
    expect(auth.cached({ authorization: " BEARER   oidc.cached " })?.subject).toBe("oidc:oidc.cached");
    expect(auth.cached({ "x-api-key": apiKey, authorization: "Bearer sa.cached" })).toBeUndefined();
    expect(setup({ apiKeys: false }).auth.cached({ "x-api-key": apiKey })).toBeUndefined();
    expect(setup({ apiKeys: false }).auth.cached({ authorization: `Bearer ${apiKey}` })).toBeUndefined();
    const withoutOidc = new Authenticator({ serviceAccounts: serviceAccounts as unknown as TokenVerifier });
    expect(withoutOidc.cached({ authorization: "Bearer sa.cached" })?.subject).toBe("sa:sa.cached");
    expect(withoutOidc.cached({ authorization: "Bearer oidc.cached" })).toBeUndefined();
    for (const authorization of [undefined, "Bearer sa.tok", "Basic sa.cached", "xBearer sa.cached", "Bearer sa.cached extra", "Bearer a/b"]) {
      expect(auth.cached({ authorization }), String(authorization)).toBeUndefined();
    }
    expect([...serviceAccounts.asked, ...apiKeys.asked, ...oidc.asked]).toEqual([]);
  });
});

describe("Authenticator.current (a stored creator as its credential stands now)", () => {
  const earlier = (kind: "api_key" | "service_account" | "oidc", id: string, roles: string[]): Principal => ({
    subject: "webhooks/w",
    tenant: "acme",
    roles,
    credential: { kind, id },
    tier: "free",
  });
  const keys = new Map<string, { roles: string[]; tenant: string; expired?: boolean }>([
    ["sa-editor", { roles: ["editor"], tenant: "acme" }],
    ["sa-viewer", { roles: ["viewer"], tenant: "acme" }],
    ["sa-moved", { roles: ["admin"], tenant: "globex" }],
  ]);
  const apiKeys = new Map<string, Principal | Error>([
    ["k-live", { ...earlier("api_key", "k-live", ["editor"]), tier: "pro" }],
    ["k-revoked", new UnauthenticatedError("API key revoked")],
  ]);
  const auth = (oidcIssuer?: string) =>
    new Authenticator({
      serviceAccounts: {
        key: (id: string) => {
          const k = keys.get(id);
          if (k === undefined) throw new UnauthenticatedError("service-account key no longer in the keys file");
          return { keyId: id, roles: k.roles, tenant: k.tenant, tier: "enterprise" };
        },
      } as unknown as TokenVerifier,
      apiKeys: {
        current: async (id: string) => {
          const k = apiKeys.get(id);
          if (k === undefined || k instanceof Error) throw k ?? new UnauthenticatedError("unknown API key");
          return k;
        },
      } as unknown as CredentialVerifier,
      ...(oidcIssuer !== undefined && { oidc: { issuer: oidcIssuer } as OidcTokenVerifier }),
    });

  it("keeps the roles the credential still grants and takes its tier now", async () => {
    expect(await auth().current(earlier("api_key", "k-live", ["editor"]))).toMatchObject({ roles: ["editor"], tier: "pro", subject: "webhooks/w" });
    // A token of an editor key may have claimed editor and viewer; the key, now viewer, grants only viewer.
    expect((await auth().current(earlier("service_account", "sa-viewer", ["editor", "viewer"]))).roles).toEqual(["viewer"]);
    expect(await auth().current(earlier("service_account", "sa-editor", ["editor"]))).toMatchObject({ roles: ["editor"], tier: "enterprise" });
    // Never more than it had: an editor key does not lift a viewer's grant.
    expect((await auth().current(earlier("service_account", "sa-editor", ["viewer"]))).roles).toEqual(["viewer"]);
  });

  it("refuses a revoked, deleted or moved credential, and OIDC once its issuer is not trusted", async () => {
    expect(await refusal(auth().current(earlier("api_key", "k-revoked", ["editor"])))).toBe("API key revoked");
    expect(await refusal(auth().current(earlier("api_key", "k-gone", ["editor"])))).toBe("unknown API key");
    expect(await refusal(auth().current(earlier("service_account", "sa-gone", ["editor"])))).toBe("service-account key no longer in the keys file");
    expect(await refusal(auth().current(earlier("service_account", "sa-moved", ["admin"])))).toBe("the credential now belongs to another tenant");
    const user = earlier("oidc", "https://idp.example#alice", ["editor"]);
    expect(await auth("https://idp.example").current(user)).toEqual(user);
    expect(await refusal(auth("https://other.example").current(user))).toBe("the OIDC issuer is no longer trusted");
    expect(await refusal(auth().current(user))).toBe("the OIDC issuer is no longer trusted");
  });
});
