// The interceptors of src/rpc/ and what they decide with, called straight in
// connect's in-memory router transport, without a gateway: permissions,
// authentication and rate limits (CallAuthenticator, over a real token
// verifier and real in-memory buckets), validation, request ids, the call's
// metrics code, error mapping and its log, the handler's request context,
// and the audit (changes as the handler sees them; refusals queued and
// written to a real database). Every expected value is written out here,
// not computed by the code under test.
import { createSecretKey, randomBytes, randomUUID } from "node:crypto";
import { create, type DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createClient,
  createContextValues,
  createHandlerContext,
  createRouterTransport,
  type Interceptor,
  type ServiceImpl,
} from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { OperationService, WorkerService } from "../gen/anvil/operations/v1/operations_pb.js";
import { SignInService } from "../gen/anvil/identity/v1/identity_pb.js";
import { GetUserRequestSchema, UserService } from "../gen/anvil/users/v1/users_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import type { ChangeAudit } from "../src/audit/audit-event.js";
import { AuditRepository } from "../src/audit/audit.repository.js";
import { AuditQueue, type CredentialClaim } from "../src/audit/audit-queue.js";
import { AuditStore } from "../src/audit/audit-store.repository.js";
import { Authenticator } from "../src/auth/authenticator.js";
import type { Principal, Tier } from "../src/auth/principal.js";
import { TokenVerifier } from "../src/auth/token-verifier.js";
import type { ServiceAccountKey } from "../src/auth/key-store.js";
import { MemoryBuckets } from "../src/limits/memory-buckets.js";
import { type LimitResult, type RateLimitEvents, RateLimiter } from "../src/limits/rate-limiter.js";
import type { RatePolicy } from "../src/limits/rate-policy.js";
import type { BucketStore } from "../src/limits/token-bucket.js";
import type { CallMeter } from "../src/metrics/rpc-metrics.js";
import { auditInterceptor, changeAuditOf, mutatingMethods } from "../src/rpc/audit-interceptor.js";
import { authInterceptor } from "../src/rpc/auth-interceptor.js";
import { type AuthOutcome, authOutcomeKey, CallAuthenticator } from "../src/rpc/call-authenticator.js";
import { header, traceIdOf } from "../src/rpc/call-facts.js";
import { ClientAddresses } from "../src/rpc/client-address.js";
import { errorInterceptor } from "../src/rpc/error-interceptor.js";
import { readMethodPolicies } from "../src/rpc/method-policies.js";
import { callMeterKey, metricsInterceptor } from "../src/rpc/metrics-interceptor.js";
import { permissionInterceptor } from "../src/rpc/permission-interceptor.js";
import { appliedLimitKey } from "../src/rpc/rate-limit-headers.js";
import { RefusalAudit } from "../src/rpc/refusal-audit.js";
import { changeAuditKey, clientAddressKey, principalKey, protocolKey, requestContext, requestIdKey, traceKey } from "../src/rpc/request-context.js";
import { requestIdHeader, requestIdInterceptor } from "../src/rpc/request-id-interceptor.js";
import { validationInterceptor } from "../src/rpc/validation-interceptor.js";
import { InternalError, InvalidArgumentError, NotFoundError, PermissionDeniedError, RateLimitedError, UnauthenticatedError } from "../src/shared/errors.js";
import { databaseKinds } from "./support/databases.js";
import { refusal, setting, usersWith } from "./support/in-memory-calls.js";
import { captureLog } from "./support/log-capture.js";
import { migratedDatabase } from "./support/migrated-database.js";
import { mintToken, type TestKey } from "./support/tokens.js";

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const userId = "0b8e3c2a-8d5e-4f3b-9c1d-2a7f6e5d4c3b";
const taskId = "5f0c6a9e-3b1d-4e2f-8a7c-9d6b5e4f3a21";

/** A caller as the auth interceptor stores it. */
const caller = (over: Partial<Principal> = {}): Principal => ({
  subject: "alice",
  tenant: "acme",
  roles: ["admin"],
  credential: { kind: "api_key", id: "k1" },
  tier: "free",
  ...over,
});

/** A client of `service` over connect's in-memory transport, `interceptors` around `impl` (the first outermost). */
function clientOf<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>, interceptors: Interceptor[]) {
  return createClient(service, createRouterTransport(({ service: register }) => void register(service, impl), { router: { interceptors } }));
}

/** Keeps the context values of every call that gets this far (place it where the handler would read them). */
const seeing =
  (seen: ContextValues[]): Interceptor =>
  (next) =>
  (req) => {
    seen.push(req.contextValues);
    return next(req);
  };

/** What an interceptor threw, as thrown, with the call's context values. */
type Caught = { err: unknown; values: ContextValues };

/** Keeps what the interceptors inside it threw. */
const catching =
  (caught: Caught[]): Interceptor =>
  (next) =>
  async (req) => {
    try {
      return await next(req);
    } catch (err) {
      caught.push({ err, values: req.contextValues });
      throw err;
    }
  };

/** Fails every call with `err`, as a layer below the interceptor under test would. */
const throwing =
  (err: unknown): Interceptor =>
  () =>
  () => {
    throw err;
  };

describe("the permission interceptor", () => {
  const policies = readMethodPolicies([UserService], new Set());

  it("lets through a caller whose roles grant the method's permission, and anyone to a public method", async () => {
    expect((await usersWith([setting(principalKey, caller()), permissionInterceptor(policies)]).getUser({ id: "u1" })).user?.id).toBe("u1");
    const open = readMethodPolicies([UserService], new Set([UserService.typeName]));
    expect((await usersWith([permissionInterceptor(open)]).getUser({ id: "u2" })).user?.id).toBe("u2");
    expect((await usersWith([setting(principalKey, caller({ roles: [] })), permissionInterceptor(open)]).getUser({ id: "u3" })).user?.id).toBe("u3");
  });

  it("refuses a caller without the permission, or without a principal, naming the permission", async () => {
    for (const principal of [caller({ roles: ["viewer", "editor"] }), undefined]) {
      const caught: Caught[] = [];
      const users = usersWith([catching(caught), setting(principalKey, principal), permissionInterceptor(policies)]);
      await refusal(users.getUser({ id: "u1" }));
      const err = caught[0]?.err as PermissionDeniedError;
      expect(err).toBeInstanceOf(PermissionDeniedError);
      expect([err.message, err.metadata]).toEqual(["permission users.read required", { permission: "users.read" }]);
    }
  });

  it("fails a method without a policy as a bug, before the handler", async () => {
    const caught: Caught[] = [];
    const seen: ContextValues[] = [];
    await refusal(usersWith([catching(caught), setting(principalKey, caller()), permissionInterceptor(new Map()), seeing(seen)]).getUser({ id: "u1" }));
    expect(caught[0]?.err).toBeInstanceOf(InternalError);
    expect((caught[0]?.err as Error).message).toBe("no policy for GetUser");
    expect(seen).toEqual([]);
  });
});

/** A service-account key of the keys file, for tokens minted with mintToken. */
const testKey = (key_id: string, roles: string[], tier: Tier): TestKey => ({
  key_id,
  principal: `${key_id}@acme`,
  tenant: "acme",
  roles,
  secret: randomBytes(32).toString("base64url"),
  expires_at: null,
  tier,
});
const freeKey = testKey("ci-free", ["admin"], "free");
const unlimitedKey = testKey("ci-unlimited", ["admin"], "unlimited");
const viewerKey = testKey("ci-viewer", ["viewer"], "unlimited");
const keys = new Map<string, ServiceAccountKey>(
  [freeKey, unlimitedKey, viewerKey].map((k) => {
    const secret = Buffer.from(k.secret, "base64url");
    return [k.key_id, { keyId: k.key_id, principal: k.principal, tenant: k.tenant, roles: k.roles, secret: createSecretKey(secret), secretBytes: secret, expiresAt: null, tier: k.tier as Tier }];
  }),
);
const bearer = async (k: TestKey, roles?: string[]) => ({ authorization: `Bearer ${await mintToken(k, { sub: "ci", ...(roles && { roles }) })}` });

/** Two calls at once, then one a second, for an address and for the `free` tier. */
const ip: RatePolicy = { name: "ip", burst: 2, ratePerMinute: 60 };
const free: RatePolicy = { name: "free", burst: 2, ratePerMinute: 60 };
const roomy: RatePolicy = { name: "roomy", burst: 1_000, ratePerMinute: 60_000 };
/** UserService needs a token; SignInService is public and limited per address; Health is public and never limited. */
const policies = readMethodPolicies([UserService, SignInService, Health], new Set([SignInService.typeName, Health.typeName]));

/** A CallAuthenticator over a real token verifier and rate limiter, as the gateway builds it (trusting proxies in 10.0.0.0/8). */
function gate(store: BucketStore = new MemoryBuckets(), events?: RateLimitEvents) {
  const limiter = new RateLimiter(store, { tiers: { free, pro: roomy, enterprise: roomy }, address: ip, events });
  const authenticator = new Authenticator({ serviceAccounts: new TokenVerifier(keys) });
  return new CallAuthenticator(authenticator, policies, { limiter, addresses: new ClientAddresses(["10.0.0.0/8"]), unlimitedServices: new Set([Health.typeName]) });
}
const storeDown: BucketStore = { take: () => Promise.reject(new Error("store down")), close: async () => {} };

/** The refusal of an outcome (the test fails if it was allowed). */
function refused(outcome: AuthOutcome): unknown {
  if (!("refused" in outcome)) throw new Error(`allowed: ${JSON.stringify(outcome)}`);
  return outcome.refused;
}

/** The facts of a rate-limit refusal, as its error's details carry them. */
function limitFacts(err: unknown) {
  expect(err).toBeInstanceOf(RateLimitedError);
  return (err as RateLimitedError).limit;
}

describe("CallAuthenticator", () => {
  const getUser = UserService.method.getUser;
  const signIn = SignInService.method.getSignInOptions;

  it("lets a public method of an unlimited service through without taking a token", async () => {
    const calls = gate();
    for (let i = 0; i < 3; i++) {
      const outcome = await calls.decide(Health.method.check, {}, "9.9.9.9");
      expect(outcome).toStrictEqual({ principal: undefined, client: "9.9.9.9" });
    }
    // Nothing was taken from the address's bucket.
    expect((await calls.decide(signIn, {}, "9.9.9.9")).limit?.answer.remaining).toBe(1);
  });

  it("limits a public method per client address, and refuses with the address's limit once it runs dry", async () => {
    const calls = gate();
    const first = await calls.decide(signIn, {}, "9.9.9.9");
    expect(first).toMatchObject({ principal: undefined, client: "9.9.9.9", limit: { policy: ip, subject: "ip:9.9.9.9", answer: { allowed: true, remaining: 1 } } });
    expect("refused" in first).toBe(false);
    expect((await calls.decide(signIn, {}, "9.9.9.9")).limit?.answer).toMatchObject({ allowed: true, remaining: 0 });
    const third = await calls.decide(signIn, {}, "9.9.9.9");
    expect(third).toMatchObject({ client: "9.9.9.9", limit: { subject: "ip:9.9.9.9", answer: { allowed: false, remaining: 0 } } });
    const facts = limitFacts(refused(third));
    expect(facts).toEqual({ policy: "ip", burst: 2, ratePerMinute: 60, subject: "ip:9.9.9.9", retryAfterMs: third.limit?.answer.retryAfterMs });
    expect(facts.retryAfterMs).toBeGreaterThan(900);
    expect(facts.retryAfterMs).toBeLessThanOrEqual(1_000);
    // Another address has its own bucket.
    expect("refused" in (await calls.decide(signIn, {}, "8.8.8.8"))).toBe(false);
  });

  it("authenticates a method that needs a token, and limits the credential by its tier", async () => {
    const calls = gate();
    const headers = await bearer(freeKey);
    const first = await calls.decide(getUser, headers, "9.9.9.9");
    expect(first).toMatchObject({
      principal: { subject: "ci", tenant: "acme", roles: ["admin"], credential: { kind: "service_account", id: "ci-free" }, tier: "free" },
      client: "9.9.9.9",
      limit: { policy: free, subject: "service_account:ci-free", answer: { allowed: true, remaining: 1 } },
    });
    expect("refused" in first).toBe(false);
    await calls.decide(getUser, headers, "9.9.9.9");
    const third = await calls.decide(getUser, headers, "9.9.9.9");
    // Refused by its own limit, the call still names who made it.
    expect(third).toMatchObject({ client: "9.9.9.9", principal: { subject: "ci" }, limit: { subject: "service_account:ci-free", answer: { allowed: false } } });
    expect(limitFacts(refused(third))).toMatchObject({ policy: "free", burst: 2, ratePerMinute: 60, subject: "service_account:ci-free" });
    // The address's bucket was not touched by authenticated calls.
    expect((await calls.decide(signIn, {}, "9.9.9.9")).limit?.answer.remaining).toBe(1);
  });

  it("leaves an unlimited credential unlimited: no limit applies", async () => {
    const calls = gate();
    const headers = await bearer(unlimitedKey);
    for (let i = 0; i < 3; i++) {
      const outcome = await calls.decide(getUser, headers, "9.9.9.9");
      expect(outcome).toStrictEqual({ principal: { subject: "ci", tenant: "acme", roles: ["admin"], credential: { kind: "service_account", id: "ci-unlimited" }, tier: "unlimited" }, client: "9.9.9.9" });
    }
  });

  it("counts failed credentials against the address, and while it is dry refuses even a valid credential it has not verified", async () => {
    const calls = gate();
    const cachedHeaders = await bearer(unlimitedKey);
    expect("refused" in (await calls.decide(getUser, cachedHeaders, "9.9.9.9"))).toBe(false);
    const first = await calls.decide(getUser, {}, "9.9.9.9");
    expect(refused(first)).toBeInstanceOf(UnauthenticatedError);
    expect(first).toMatchObject({ client: "9.9.9.9", limit: { subject: "ip:9.9.9.9", answer: { allowed: true, remaining: 1 } } });
    expect("principal" in first).toBe(false);
    const second = await calls.decide(getUser, { authorization: "Bearer nonsense" }, "9.9.9.9");
    expect(refused(second)).toBeInstanceOf(UnauthenticatedError);
    expect(second.limit?.answer.remaining).toBe(0);
    // Dry: a right guess is refused like a wrong one, without being verified.
    const guess = await calls.decide(getUser, await bearer(freeKey), "9.9.9.9");
    expect(limitFacts(refused(guess))).toMatchObject({ policy: "ip", subject: "ip:9.9.9.9" });
    expect(guess).toMatchObject({ client: "9.9.9.9", limit: { subject: "ip:9.9.9.9", answer: { allowed: false, remaining: 0 } } });
    expect((await calls.decide(getUser, {}, "9.9.9.9")).limit?.answer.allowed).toBe(false);
    // A credential this instance verified before still gets through.
    expect(await calls.decide(getUser, cachedHeaders, "9.9.9.9")).toStrictEqual({
      principal: { subject: "ci", tenant: "acme", roles: ["admin"], credential: { kind: "service_account", id: "ci-unlimited" }, tier: "unlimited" },
      client: "9.9.9.9",
    });
  });

  it("counts as refused by its policy each call it refuses, and not a call a verified credential lets through a dry address", async () => {
    const refusals: string[] = [];
    const calls = gate(new MemoryBuckets(), { refused: (policy) => refusals.push(policy) });
    const cachedHeaders = await bearer(unlimitedKey);
    await calls.decide(getUser, cachedHeaders, "9.9.9.9");
    // Two failed credentials run the address dry (its burst is 2): refused as UNAUTHENTICATED, not by a limit.
    await calls.decide(getUser, {}, "9.9.9.9");
    await calls.decide(getUser, {}, "9.9.9.9");
    expect(refusals).toEqual([]);
    expect("refused" in (await calls.decide(getUser, cachedHeaders, "9.9.9.9"))).toBe(false);
    expect(refusals).toEqual([]);
    refused(await calls.decide(getUser, {}, "9.9.9.9"));
    expect(refusals).toEqual(["ip"]);
    refused(calls.blockedAddress({}, "9.9.9.9")!);
    expect(refusals).toEqual(["ip", "ip"]);
    // A tier's refusal counts under the tier's name.
    const headers = await bearer(freeKey);
    for (let i = 0; i < 3; i++) await calls.decide(getUser, headers, "8.8.8.8");
    expect(refusals).toEqual(["ip", "ip", "free"]);
  });

  it("answers with the address's limit when another instance drained it first", async () => {
    const shared = new MemoryBuckets();
    const other = gate(shared);
    await other.decide(signIn, {}, "9.9.9.9");
    await other.decide(signIn, {}, "9.9.9.9");
    const outcome = await gate(shared).decide(getUser, {}, "9.9.9.9");
    expect(limitFacts(refused(outcome))).toMatchObject({ policy: "ip", subject: "ip:9.9.9.9" });
  });

  it("does not count a failure that is not the caller's credential against its address", async () => {
    const calls = gate();
    // A viewer key's token claiming admin: PERMISSION_DENIED from the verifier.
    const outcome = await calls.decide(getUser, await bearer(viewerKey, ["admin"]), "9.9.9.9");
    expect(refused(outcome)).toBeInstanceOf(PermissionDeniedError);
    expect(outcome).toStrictEqual({ refused: expect.anything(), client: "9.9.9.9" });
    expect((await calls.decide(signIn, {}, "9.9.9.9")).limit?.answer.remaining).toBe(1);
  });

  it("treats a method without a policy as one that needs a token", async () => {
    expect(refused(await gate().decide(OperationService.method.getOperation, {}, "9.9.9.9"))).toBeInstanceOf(UnauthenticatedError);
  });

  it("refuses, never throws, when the limiter fails", async () => {
    const calls = gate(storeDown);
    for (const outcome of [
      await calls.decide(signIn, {}, "9.9.9.9"),
      await calls.decide(getUser, await bearer(freeKey), "9.9.9.9"),
      await calls.decide(getUser, {}, "9.9.9.9"),
      await calls.decidePublic({}, "9.9.9.9"),
      await calls.decideFor(caller(), {}, "9.9.9.9"),
    ]) {
      expect(outcome).toStrictEqual({ refused: new Error("store down"), client: "9.9.9.9" });
    }
  });

  it("reads the client's address behind a trusted proxy from X-Forwarded-For", async () => {
    const calls = gate();
    expect(calls.clientAddress("10.0.0.1", { "x-forwarded-for": "1.2.3.4" })).toBe("1.2.3.4");
    expect(calls.clientAddress("8.8.8.8", { "x-forwarded-for": "1.2.3.4" })).toBe("8.8.8.8");
    expect(calls.clientAddress(undefined, new Headers())).toBe("unknown");
    const forwarded = { "x-forwarded-for": "1.2.3.4" };
    expect((await calls.decide(Health.method.check, forwarded, "10.0.0.1")).client).toBe("1.2.3.4");
    expect((await calls.decidePublic(forwarded, "10.0.0.1")).limit?.subject).toBe("ip:1.2.3.4");
    expect((await calls.decideFor(caller(), forwarded, "10.0.0.1")).client).toBe("1.2.3.4");
    expect(calls.blockedAddress(forwarded, "10.0.0.1")).toBeUndefined();
  });

  it("limits public endpoints that are no RPC per address", async () => {
    const calls = gate();
    expect(await calls.decidePublic({}, "9.9.9.9")).toMatchObject({ principal: undefined, client: "9.9.9.9", limit: { subject: "ip:9.9.9.9", answer: { remaining: 1 } } });
    await calls.decidePublic({}, "9.9.9.9");
    const third = await calls.decidePublic({}, "9.9.9.9");
    expect(limitFacts(refused(third))).toMatchObject({ policy: "ip", burst: 2, subject: "ip:9.9.9.9" });
    expect(third).toMatchObject({ client: "9.9.9.9", limit: { answer: { allowed: false } } });
  });

  it("says whether an address ran dry, without taking a token", async () => {
    const calls = gate();
    expect(calls.blockedAddress({}, "9.9.9.9")).toBeUndefined();
    await calls.decidePublic({}, "9.9.9.9");
    expect(calls.blockedAddress({}, "9.9.9.9")).toBeUndefined();
    await calls.decidePublic({}, "9.9.9.9");
    for (let i = 0; i < 2; i++) {
      const blocked = calls.blockedAddress({}, "9.9.9.9");
      expect(blocked).toMatchObject({ client: "9.9.9.9", limit: { subject: "ip:9.9.9.9", answer: { allowed: false, remaining: 0 } } });
      expect(limitFacts(refused(blocked!))).toMatchObject({ policy: "ip", subject: "ip:9.9.9.9", retryAfterMs: blocked!.limit!.answer.retryAfterMs });
    }
    expect(calls.blockedAddress({}, "8.8.8.8")).toBeUndefined();
  });

  it("limits a call made for a principal established otherwise by that credential's limit alone", async () => {
    const calls = gate();
    const principal = caller({ credential: { kind: "api_key", id: "k9" } });
    expect(await calls.decideFor(principal, {}, "9.9.9.9")).toMatchObject({ principal, client: "9.9.9.9", limit: { subject: "api_key:k9", answer: { remaining: 1 } } });
    await calls.decideFor(principal, {}, "9.9.9.9");
    const third = await calls.decideFor(principal, {}, "9.9.9.9");
    expect(limitFacts(refused(third))).toMatchObject({ policy: "free", subject: "api_key:k9" });
    expect(third).toMatchObject({ principal, client: "9.9.9.9", limit: { answer: { allowed: false } } });
    const unlimited = caller({ tier: "unlimited" });
    expect(await calls.decideFor(unlimited, {}, "9.9.9.9")).toStrictEqual({ principal: unlimited, client: "9.9.9.9" });
    // Never against the address.
    expect((await calls.decidePublic({}, "9.9.9.9")).limit?.answer.remaining).toBe(1);
  });
});

describe("the auth interceptor", () => {
  const limit: LimitResult = { policy: free, subject: "api_key:k1", answer: { allowed: true, remaining: 1, retryAfterMs: 0, fullInMs: 1_000 } };

  it("decides a call no transport decided from its headers, without a peer, and stores what it found", async () => {
    const seen: ContextValues[] = [];
    const users = usersWith([authInterceptor(gate()), seeing(seen)]);
    expect((await users.getUser({ id: "u1" }, { headers: await bearer(freeKey) })).user?.id).toBe("u1");
    expect(seen[0]?.get(principalKey)).toMatchObject({ subject: "ci", credential: { id: "ci-free" } });
    expect(seen[0]?.get(clientAddressKey)).toBe("unknown");
    expect(seen[0]?.get(appliedLimitKey)).toMatchObject({ subject: "service_account:ci-free", answer: { remaining: 1 } });
  });

  it("applies the transport's decision instead of deciding again", async () => {
    const seen: ContextValues[] = [];
    const principal = caller();
    const users = usersWith([setting(authOutcomeKey, { principal, client: "5.6.7.8", limit }), authInterceptor(gate()), seeing(seen)]);
    // No credential: deciding again would refuse.
    expect((await users.getUser({ id: "u1" })).user?.id).toBe("u1");
    expect([seen[0]?.get(principalKey), seen[0]?.get(clientAddressKey), seen[0]?.get(appliedLimitKey)]).toEqual([principal, "5.6.7.8", limit]);
  });

  it("stops a refused call before the handler, keeping the principal a credential's limit refused", async () => {
    const seen: ContextValues[] = [];
    const caught: Caught[] = [];
    const principal = caller();
    const err = new ConnectError("slow down", Code.ResourceExhausted);
    const users = usersWith([catching(caught), setting(authOutcomeKey, { refused: err, client: "5.6.7.8", limit, principal }), authInterceptor(gate()), seeing(seen)]);
    expect((await refusal(users.getUser({ id: "u1" }))).code).toBe(Code.ResourceExhausted);
    expect(seen).toEqual([]);
    expect(caught[0]?.err).toBe(err);
    const values = caught[0]!.values;
    expect([values.get(principalKey), values.get(clientAddressKey), values.get(appliedLimitKey)]).toEqual([principal, "5.6.7.8", limit]);
  });

  it("refuses a call without a credential as UNAUTHENTICATED, with the address's limit and no principal", async () => {
    const caught: Caught[] = [];
    await refusal(usersWith([catching(caught), authInterceptor(gate())]).getUser({ id: "u1" }));
    expect(caught[0]?.err).toBeInstanceOf(UnauthenticatedError);
    const values = caught[0]!.values;
    expect([values.get(principalKey), values.get(clientAddressKey), values.get(appliedLimitKey)?.subject]).toEqual([undefined, "unknown", "ip:unknown"]);
  });
});

describe("the validation interceptor", () => {
  const validating = validationInterceptor([...UserService.methods, ...WorkerService.methods].map((m) => m.input));

  it("refuses a unary request that breaks its rules, naming every violation", async () => {
    const caught: Caught[] = [];
    const seen: ContextValues[] = [];
    const users = clientOf(UserService, { createUser: () => ({}) }, [catching(caught), validating, seeing(seen)]);
    await refusal(users.createUser({ user: { email: "not an email", displayName: "d".repeat(201) } }));
    expect(seen).toEqual([]);
    const err = caught[0]?.err as { message: string; violations: unknown };
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toBe("invalid request: user.display_name must be at most 200 characters; user.email must be a valid email address");
    expect(err.violations).toEqual([
      { field: "user.display_name", description: "must be at most 200 characters" },
      { field: "user.email", description: "must be a valid email address" },
    ]);
  });

  it("lets a valid request through, and one of a method it has no validator for", async () => {
    expect((await usersWith([validating]).getUser({ id: userId })).user?.id).toBe(userId);
    expect((await usersWith([validationInterceptor([])]).getUser({ id: "not a uuid" })).user?.id).toBe("not a uuid");
  });

  it("leaves streams alone (their messages are checked as they are read)", async () => {
    const worker = clientOf(
      WorkerService,
      {
        async *streamTasks(req) {
          yield { tasks: [{ id: req.workerId }] };
        },
        async uploadArtifact(requests) {
          for await (const _ of requests);
          return { artifact: { name: "a" } };
        },
      },
      [validating],
    );
    // Both requests break their rules (no kinds, no worker id; a header without its required fields).
    const answers = [];
    for await (const answer of worker.streamTasks({})) answers.push(answer.tasks.length);
    expect(answers).toEqual([1]);
    expect((await worker.uploadArtifact((async function* () { yield { item: { case: "header" as const, value: {} } }; })())).artifact?.name).toBe("a");
  });
});

describe("request ids", () => {
  it("are in the context the handler reads: the client's when sane, else the one echoed", async () => {
    const seen: ContextValues[] = [];
    const users = usersWith([requestIdInterceptor(), seeing(seen)]);
    await users.getUser({ id: "u1" }, { headers: { [requestIdHeader]: "mine-9" } });
    let echoed: string | null = null;
    await users.getUser({ id: "u1" }, { onHeader: (h) => (echoed = h.get(requestIdHeader)) });
    expect(seen.map((v) => v.get(requestIdKey))).toEqual(["mine-9", echoed]);
    expect(echoed).toMatch(uuid);
  });

  it("leave an error that is no ConnectError as it was thrown", async () => {
    const caught: Caught[] = [];
    const boom = new Error("boom");
    await refusal(usersWith([catching(caught), requestIdInterceptor(), throwing(boom)]).getUser({ id: "u1" }));
    expect(caught[0]?.err).toBe(boom);
  });
});

/** A call meter that keeps every code it is told (the real one keeps the first). */
function recordingMeter(): { codes: number[]; meter: CallMeter } {
  const codes: number[] = [];
  return { codes, meter: { received: () => {}, sent: () => {}, code: (c) => void codes.push(c), coded: false, end: () => {} } };
}

describe("the metrics interceptor", () => {
  it("tells the meter a unary call's code once: OK, or the code of what was thrown", async () => {
    const ok = recordingMeter();
    await usersWith([setting(callMeterKey, ok.meter), metricsInterceptor()]).getUser({ id: "u1" });
    expect(ok.codes).toEqual([0]);
    const missing = recordingMeter();
    expect((await refusal(usersWith([setting(callMeterKey, missing.meter), metricsInterceptor()]).getUser({ id: "missing" }))).code).toBe(Code.NotFound);
    expect(missing.codes).toEqual([Code.NotFound]);
    const plain = recordingMeter();
    const caught: Caught[] = [];
    const boom = new Error("boom");
    await refusal(usersWith([catching(caught), setting(callMeterKey, plain.meter), metricsInterceptor(), throwing(boom)]).getUser({ id: "u1" }));
    expect(plain.codes).toEqual([Code.Unknown]);
    expect(caught[0]?.err).toBe(boom);
  });

  it("leaves a call without a meter alone", async () => {
    expect((await usersWith([metricsInterceptor()]).getUser({ id: "u1" })).user?.id).toBe("u1");
    expect((await refusal(usersWith([metricsInterceptor()]).getUser({ id: "missing" }))).code).toBe(Code.NotFound);
  });

  it("tells the code of a stream when it ends, not when it starts", async () => {
    const watch = (meter: CallMeter, fail: boolean, during: number[][], codes: number[]) =>
      clientOf(
        OperationService,
        {
          async *watchOperation() {
            yield { item: { case: "keepAlive", value: {} } };
            during.push([...codes]);
            if (fail) throw new ConnectError("gone", Code.NotFound);
            yield { item: { case: "keepAlive", value: {} } };
            during.push([...codes]);
          },
        },
        [setting(callMeterKey, meter), metricsInterceptor()],
      ).watchOperation({ id: userId });
    const ok = recordingMeter();
    const during: number[][] = [];
    let n = 0;
    for await (const _ of watch(ok.meter, false, during, ok.codes)) n++;
    expect([n, during, ok.codes]).toEqual([2, [[], []], [0]]);
    const failed = recordingMeter();
    const duringFailed: number[][] = [];
    const received: string[] = [];
    const error = await (async () => {
      try {
        for await (const m of watch(failed.meter, true, duringFailed, failed.codes)) received.push(m.item.case ?? "");
      } catch (err) {
        return ConnectError.from(err);
      }
    })();
    expect([received, error?.code, duringFailed, failed.codes]).toEqual([["keepAlive"], Code.NotFound, [[]], [Code.NotFound]]);
  });
});

describe("the error interceptor", () => {
  it("maps a domain error to its code and message, without logging it", async () => {
    const { log, lines } = captureLog();
    const err = await refusal(usersWith([setting(requestIdKey, "rid-1"), errorInterceptor(log), throwing(new NotFoundError("user", "u9"))]).getUser({ id: "u1" }));
    expect([err.code, err.rawMessage]).toEqual([Code.NotFound, "user u9 not found"]);
    expect(lines).toEqual([]);
  });

  it("answers anything else as INTERNAL with the correlation id, and logs it with its method and cause", async () => {
    const { log, lines } = captureLog();
    const err = await refusal(usersWith([setting(requestIdKey, "rid-2"), errorInterceptor(log), throwing(new Error("db down"))]).getUser({ id: "u1" }));
    expect([err.code, err.rawMessage]).toEqual([Code.Internal, "internal error (correlation id rid-2)"]);
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ level: 50, msg: "internal error", rpc: "anvil.users.v1.UserService/GetUser", request_id: "rid-2", err: expect.objectContaining({ message: "db down" }) }),
    ]);
  });

  it("passes answers through", async () => {
    const { log, lines } = captureLog();
    expect((await usersWith([errorInterceptor(log)]).getUser({ id: "u1" })).user?.id).toBe("u1");
    expect(lines).toEqual([]);
  });

  it("maps what a stream throws after its first messages, and passes its messages through", async () => {
    const { log, lines } = captureLog();
    const watch = (thrown: unknown) =>
      clientOf(
        OperationService,
        {
          async *watchOperation() {
            yield { item: { case: "keepAlive", value: {} } };
            if (thrown !== undefined) throw thrown;
            yield { item: { case: "keepAlive", value: {} } };
          },
        },
        [setting(requestIdKey, "rid-3"), errorInterceptor(log)],
      ).watchOperation({ id: userId });
    const run = async (thrown: unknown) => {
      let n = 0;
      try {
        for await (const _ of watch(thrown)) n++;
      } catch (err) {
        const e = ConnectError.from(err);
        return [n, e.code, e.rawMessage];
      }
      return [n];
    };
    expect(await run(undefined)).toEqual([2]);
    expect(await run(new NotFoundError("operation", "o1"))).toEqual([1, Code.NotFound, "operation o1 not found"]);
    expect(lines).toEqual([]);
    expect(await run(new Error("lost"))).toEqual([1, Code.Internal, "internal error (correlation id rid-3)"]);
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ level: 50, rpc: "anvil.operations.v1.OperationService/WatchOperation", request_id: "rid-3", err: expect.objectContaining({ message: "lost" }) }),
    ]);
  });
});

describe("call facts", () => {
  it("read a record that holds a header called get as a record", () => {
    expect(header({ get: "x", "user-agent": "curl/8" }, "user-agent")).toBe("curl/8");
  });

  it("keep a trace id that ends in zeros, and need the flags", () => {
    const id = "4bf92f3577b34da6a3ce929d0e0e4700";
    expect(traceIdOf({ traceparent: `00-${id}-00f067aa0ba902b7-01` })).toBe(id);
    expect(traceIdOf({ traceparent: `00-${id}-00f067aa0ba902b7-` })).toBe("");
    expect(traceIdOf({ traceparent: `00-${id}-00f067aa0ba902b7-0g` })).toBe("");
  });
});

describe("the request context", () => {
  const contextOf = (values: ContextValues, timeoutMs?: number) =>
    requestContext(
      createHandlerContext({
        service: UserService,
        method: UserService.method.getUser,
        protocolName: "connect",
        requestMethod: "POST",
        url: "http://localhost/anvil.users.v1.UserService/GetUser",
        contextValues: values,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      }),
    );

  it("hands the handler plain facts about the caller and the call", () => {
    const values = createContextValues();
    const principal = caller({ roles: ["editor"], credential: { kind: "oidc", id: "idp#7" }, tier: "pro" });
    const audit: ChangeAudit = { eventFor: () => ({}) as never };
    const trace = {} as never;
    values.set(principalKey, principal).set(requestIdKey, "rid-4").set(clientAddressKey, "1.2.3.4").set(changeAuditKey, audit).set(traceKey, trace);
    const before = Date.now();
    const ctx = contextOf(values, 5_000);
    const after = Date.now();
    expect({ ...ctx, deadline: undefined }).toEqual({
      principal: "alice",
      tenant: "acme",
      roles: ["editor"],
      credential: { kind: "oidc", id: "idp#7" },
      requestId: "rid-4",
      clientAddress: "1.2.3.4",
      tier: "pro",
      deadline: undefined,
      audit,
      trace,
    });
    expect(ctx.audit).toBe(audit);
    expect(ctx.trace).toBe(trace);
    expect(ctx.deadline).toBeGreaterThanOrEqual(before + 4_900);
    expect(ctx.deadline).toBeLessThanOrEqual(after + 5_000);
  });

  it("has no deadline without a timeout, and the keys' defaults before anything set them", () => {
    const values = createContextValues().set(principalKey, caller());
    const ctx = contextOf(values);
    expect([ctx.deadline, ctx.requestId, ctx.clientAddress, ctx.audit, ctx.trace]).toEqual([undefined, "", "unknown", undefined, undefined]);
    const fresh = createContextValues();
    expect([principalKey, clientAddressKey, requestIdKey, protocolKey, traceKey, changeAuditKey].map((k) => [k.id.description, fresh.get(k as never)])).toEqual([
      ["principal", undefined],
      ["client address", "unknown"],
      ["request id", ""],
      ["protocol", undefined],
      ["trace context", undefined],
      ["change audit", undefined],
    ]);
    expect([authOutcomeKey.id.description, callMeterKey.id.description]).toEqual(["authentication decided before the body", "the call's metrics meter"]);
  });

  it("is never made without a principal", () => {
    expect(() => contextOf(createContextValues())).toThrow(new InternalError("handler reached without an authenticated principal"));
  });
});

describe("the audit of changes", () => {
  const mutating = mutatingMethods([UserService, WorkerService, OperationService]);
  const noRefusals = new RefusalAudit(undefined);
  const time = new Date(Date.UTC(2026, 10, 30, 3, 0));
  const traceId = "0af7651916cd43dd8448eb211c80319c";
  const headers = { traceparent: `00-${traceId}-b7ad6b7169203331-01`, "user-agent": "ua/1" };

  it("reads the mutating methods from the protos: all but those without side effects", () => {
    expect([...mutatingMethods([UserService])].map((m) => m.name)).toEqual(["CreateUser", "UpdateUser", "DeleteUser"]);
  });

  /** A UserService whose handlers hand back the audit they found, made with `touched` ids twice (the caller changed in between). */
  const users = (interceptors: Interceptor[]) => {
    const audits: Array<ChangeAudit | undefined> = [];
    const events: unknown[] = [];
    const record = (values: ContextValues, touched: string[]) => {
      const audit = values.get(changeAuditKey);
      audits.push(audit);
      if (audit === undefined) return;
      events.push(audit.eventFor(touched, time));
      values.set(principalKey, caller({ subject: "someone else" }));
      events.push(audit.eventFor([], new Date(0)));
    };
    const client = clientOf(
      UserService,
      {
        createUser: (_, ctx) => (record(ctx.values, ["u-new", "u-new"]), {}),
        updateUser: (_, ctx) => (record(ctx.values, ["u3", "u2"]), {}),
        getUser: (_, ctx) => (record(ctx.values, []), {}),
      },
      interceptors,
    );
    return { client, audits, events };
  };
  /** The chain as the gateway orders it: the audit outside, the caller set inside it. */
  const chain = (principal: Principal | undefined, ...outer: Interceptor[]) => [
    ...outer,
    setting(requestIdKey, "rid-5"),
    auditInterceptor(mutating, noRefusals),
    setting(clientAddressKey, "1.2.3.4"),
    setting(principalKey, principal),
  ];

  it("gives a mutating call the event of its change, with the caller known by the time the handler runs, made once", async () => {
    const { client, events } = users(chain(caller()));
    await client.createUser({ requestId: "r1", user: { email: "a@example.com", displayName: "A" } }, { headers });
    const expected = {
      tenant: "acme",
      kind: "mutation",
      credentialKind: "api_key",
      credentialId: "k1",
      subject: "alice",
      method: "anvil.users.v1.UserService/CreateUser",
      protocol: "connect",
      requestId: "rid-5",
      traceId,
      outcome: 0,
      clientAddress: "1.2.3.4",
      userAgent: "ua/1",
      parameters: { requestId: "r1", user: { email: "a@example.com", displayName: "A" } },
      droppedCount: 0,
    };
    expect(events).toEqual([
      { ...expected, time, resourceIds: ["u-new"] },
      { ...expected, time: new Date(0), resourceIds: [] },
    ]);
  });

  it("names the request's ids and the touched ones once each, and the protocol a transport set", async () => {
    const { client, events } = users(chain(caller(), setting(protocolKey, "rest")));
    await client.updateUser({ user: { id: "u2", email: "a@example.com" }, updateMask: { paths: ["email"] } });
    expect(events[0]).toMatchObject({ protocol: "rest", resourceIds: ["u2", "u3"], traceId: "", userAgent: expect.stringMatching(/^$|connect-es/) });
    expect(events[1]).toMatchObject({ resourceIds: ["u2"] });
  });

  it("leaves the caller's fields empty when there is none", async () => {
    const { client, events } = users(chain(undefined));
    await client.createUser({ user: { email: "a@example.com" } });
    expect(events[0]).toMatchObject({ tenant: "", credentialKind: "", credentialId: "", subject: "" });
  });

  it("gives a read no audit", async () => {
    const { client, audits } = users(chain(caller()));
    await client.getUser({ id: "u1" });
    expect(audits).toEqual([undefined]);
  });

  it("makes the audit of a change around a read (a webhook delivery's) from the call's context as it stands when the event is made", () => {
    const values = createContextValues().set(requestIdKey, "rid-8").set(protocolKey, "rest");
    const audit = changeAuditOf(UserService.method.getUser, create(GetUserRequestSchema, { id: "u9" }), headers, values);
    values.set(principalKey, caller({ subject: "hook" })).set(clientAddressKey, "5.5.5.5");
    expect(audit.eventFor(["f1", "u9"], time)).toEqual({
      tenant: "acme",
      kind: "mutation",
      credentialKind: "api_key",
      credentialId: "k1",
      subject: "hook",
      method: "anvil.users.v1.UserService/GetUser",
      protocol: "rest",
      requestId: "rid-8",
      traceId,
      outcome: 0,
      clientAddress: "5.5.5.5",
      userAgent: "ua/1",
      parameters: { id: "u9" },
      droppedCount: 0,
      time,
      resourceIds: ["u9", "f1"],
    });
  });

  /** A WorkerService and OperationService whose streams report the audit their handler found. */
  const streams = () => {
    const events: unknown[] = [];
    const eventOf = (values: ContextValues) => {
      const audit = values.get(changeAuditKey);
      events.push(audit === undefined ? undefined : (({ parameters, resourceIds, method }) => ({ parameters, resourceIds, method }))(audit.eventFor([], time)));
    };
    const interceptors = chain(caller());
    const worker = clientOf(
      WorkerService,
      {
        async *streamTasks(_, ctx) {
          eventOf(ctx.values);
          yield {};
        },
        async uploadArtifact(requests, ctx) {
          if (ctx.requestHeader.get("x-early") !== null) eventOf(ctx.values);
          for await (const _ of requests);
          eventOf(ctx.values);
          return {};
        },
      },
      interceptors,
    );
    const operations = clientOf(
      OperationService,
      {
        async *watchOperation(_, ctx) {
          eventOf(ctx.values);
          yield {};
        },
      },
      interceptors,
    );
    return { worker, operations, events };
  };
  const upload = (...messages: Array<{ item: { case: "header"; value: object } | { case: "chunk"; value: Uint8Array } }>) =>
    (async function* () {
      yield* messages;
    })();

  it("audits an upload with its first message, the header that says what changes, secrets left out", async () => {
    const { worker, events } = streams();
    await worker.uploadArtifact(upload({ item: { case: "header", value: { taskId, leaseToken: userId, name: "report.txt" } } }, { item: { case: "chunk", value: new Uint8Array([1]) } }));
    expect(events).toEqual([{ method: "anvil.operations.v1.WorkerService/UploadArtifact", parameters: { header: { taskId, name: "report.txt" } }, resourceIds: [] }]);
  });

  it("audits an upload whose handler makes the event before reading with an empty request", async () => {
    const { worker, events } = streams();
    await worker.uploadArtifact(upload({ item: { case: "header", value: { taskId } } }), { headers: { "x-early": "1" } });
    expect(events).toEqual([
      { method: "anvil.operations.v1.WorkerService/UploadArtifact", parameters: {}, resourceIds: [] },
      { method: "anvil.operations.v1.WorkerService/UploadArtifact", parameters: {}, resourceIds: [] },
    ]);
  });

  it("audits a mutating server stream with its request, and a reading one not at all", async () => {
    const { worker, operations, events } = streams();
    for await (const _ of worker.streamTasks({ kinds: ["scan"], workerId: "w1" }));
    for await (const _ of operations.watchOperation({ id: userId }));
    expect(events).toEqual([{ method: "anvil.operations.v1.WorkerService/StreamTasks", parameters: { kinds: ["scan"], workerId: "w1" }, resourceIds: ["w1"] }, undefined]);
  });

  it("passes a failure on as it was thrown", async () => {
    const caught: Caught[] = [];
    const err = new ConnectError("no", Code.PermissionDenied);
    await refusal(usersWith([catching(caught), auditInterceptor(mutating, noRefusals), throwing(err)]).getUser({ id: "u1" }));
    expect(caught[0]?.err).toBe(err);
  });
});

describe.each(databaseKinds)("the audit of refusals on %s", (kind) => {
  const suite = migratedDatabase(kind);
  const keyHex = "0123456789abcdef0123456789abcdef";
  const claimedKeyId = "01234567-89ab-cdef-0123-456789abcdef";
  const apiKey = `anvil_${keyHex}_${"A".repeat(43)}`;

  /** A refusal audit over a real queue and store; refused credentials' claims resolve to `claimTenant` for the key above. */
  const audited = (claimTenant = "nobody") => {
    let platform = 0;
    const queue = new AuditQueue(new AuditStore(suite.db), captureLog().log, {
      capacity: 100,
      batchSize: 100,
      flushMs: 60_000,
      tenantOf: async (claim: CredentialClaim) => (claim.kind === "api_key" && claim.id === claimedKeyId ? claimTenant : undefined),
      events: { watch: () => {}, dropped: () => {}, written: () => {}, platform: (n) => void (platform += n) },
    });
    return { queue, refusals: new RefusalAudit(queue), platform: () => platform };
  };
  const written = (tenant: string) => suite.db.transaction().execute((trx) => new AuditRepository(trx, tenant).list({}, 20, undefined));
  const newTenant = () => `tenant-${randomUUID().slice(0, 8)}`;
  const facts = { method: UserService.method.getUser, protocol: "grpc", headers: {}, clientAddress: "1.2.3.4" };

  it("queues the three refusal codes, each error once, and nothing else", () => {
    const { queue, refusals } = audited();
    const principal = caller({ tenant: newTenant() });
    const denied = new ConnectError("no", Code.PermissionDenied);
    for (const err of [
      new ConnectError("who", Code.Unauthenticated),
      denied,
      denied,
      new ConnectError("slow", Code.ResourceExhausted),
      new ConnectError("gone", Code.NotFound),
      new ConnectError("bug", Code.Internal),
      new ConnectError("bad", Code.InvalidArgument),
      new Error("plain"),
      "text",
    ]) {
      refusals.record(err, { ...facts, principal });
    }
    expect(queue.depth).toBe(3);
  });

  it("writes an authenticated caller's refusal under its tenant, with the call's facts", async () => {
    const { queue, refusals } = audited();
    const tenant = newTenant();
    const before = Date.now();
    refusals.record(new ConnectError("no", Code.PermissionDenied), {
      method: UserService.method.getUser,
      protocol: "grpc-web",
      headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "user-agent": "ua/2", [requestIdHeader]: "from-header" },
      clientAddress: "1.2.3.4",
      principal: caller({ tenant }),
      requestId: "rid-6",
    });
    await queue.flush();
    const after = Date.now();
    const [event, ...more] = await written(tenant);
    expect(more).toEqual([]);
    expect({ ...event, id: undefined, time: undefined }).toEqual({
      id: undefined,
      time: undefined,
      tenant,
      kind: "refusal",
      credentialKind: "api_key",
      credentialId: "k1",
      subject: "alice",
      method: "anvil.users.v1.UserService/GetUser",
      protocol: "grpc-web",
      requestId: "rid-6",
      traceId: "0af7651916cd43dd8448eb211c80319c",
      resourceIds: [],
      outcome: Code.PermissionDenied,
      clientAddress: "1.2.3.4",
      userAgent: "ua/2",
      parameters: null,
      droppedCount: 0,
    });
    expect(event!.time.getTime()).toBeGreaterThanOrEqual(before - 1);
    expect(event!.time.getTime()).toBeLessThanOrEqual(after + 1);
  });

  it("files an unauthenticated refusal under the credential it claims, and takes the request id from the error, else the header", async () => {
    const tenant = newTenant();
    const { queue, refusals } = audited(tenant);
    const headers = (more: Record<string, string> = {}) => ({ "x-api-key": apiKey, ...more });
    const withId = new ConnectError("who", Code.Unauthenticated);
    withId.metadata.set(requestIdHeader, "from-error");
    refusals.record(withId, { ...facts, clientAddress: "1.1.1.1", headers: headers({ [requestIdHeader]: "from-header" }), principal: undefined, requestId: "" });
    refusals.record(new ConnectError("who", Code.Unauthenticated), { ...facts, clientAddress: "2.2.2.2", headers: headers({ [requestIdHeader]: "h".repeat(200) }), principal: undefined });
    refusals.record(new ConnectError("who", Code.Unauthenticated), { ...facts, clientAddress: "3.3.3.3", headers: headers(), principal: undefined });
    await queue.flush();
    const events = await written(tenant);
    expect(events.map((e) => [e.clientAddress, e.requestId, e.credentialKind, e.credentialId, e.subject, e.outcome]).sort()).toEqual([
      ["1.1.1.1", "from-error", "api_key", claimedKeyId, "", Code.Unauthenticated],
      ["2.2.2.2", "h".repeat(128), "api_key", claimedKeyId, "", Code.Unauthenticated],
      ["3.3.3.3", "", "api_key", claimedKeyId, "", Code.Unauthenticated],
    ]);
  });

  it("records a refusal without any credential as a platform event, and nothing without a queue", async () => {
    const { queue, refusals, platform } = audited();
    refusals.record(new ConnectError("who", Code.Unauthenticated), { ...facts, principal: undefined });
    await queue.flush();
    expect(platform()).toBe(1);
    expect(() => new RefusalAudit(undefined).record(new ConnectError("no", Code.PermissionDenied), { ...facts, principal: caller() })).not.toThrow();
  });

  it("records the refusals the chain makes, with the call's context as it stood", async () => {
    const { queue, refusals } = audited();
    const tenant = newTenant();
    const mutating = mutatingMethods([UserService]);
    const chain = (...inner: Interceptor[]) => [
      setting(requestIdKey, "rid-7"),
      auditInterceptor(mutating, refusals),
      setting(clientAddressKey, "7.7.7.7"),
      setting(principalKey, caller({ tenant, subject: "bob" })),
      ...inner,
      throwing(new ConnectError("no", Code.PermissionDenied)),
    ];
    await refusal(usersWith(chain()).getUser({ id: "u1" }));
    await refusal(usersWith(chain(setting(protocolKey, "rest"), setting(clientAddressKey, "8.8.8.8"))).getUser({ id: "u1" }));
    await refusal(usersWith(chain(throwing(new ConnectError("gone", Code.NotFound)))).getUser({ id: "u1" }));
    await queue.flush();
    const events = await written(tenant);
    expect(events.map((e) => [e.clientAddress, e.protocol, e.subject, e.requestId, e.method, e.outcome]).sort()).toEqual([
      ["7.7.7.7", "connect", "bob", "rid-7", "anvil.users.v1.UserService/GetUser", Code.PermissionDenied],
      ["8.8.8.8", "rest", "bob", "rid-7", "anvil.users.v1.UserService/GetUser", Code.PermissionDenied],
    ]);
  });
});
