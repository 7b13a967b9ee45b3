import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../gen/anvil/apikeys/v1/apikeys_pb.js";
import { OperationService } from "../gen/anvil/operations/v1/operations_pb.js";
import { WorkflowService } from "../gen/anvil/workflows/v1/workflows_pb.js";
import { QuotaFailureSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { loadConfig } from "../src/config.js";
import { ClientAddresses } from "../src/rpc/client-address.js";
import { clientFor, type Protocol } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { drain, keyOfTier, limitEnv, outcome, testTiers, tieredKey } from "./support/rate-limits.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * Rate limits against real gateways on every database, with the buckets in
 * memory and in Redis (127.0.0.1:6379, a key prefix per run): each tier's
 * burst and refill measured against its configured numbers, the refusal on
 * every protocol (RESOURCE_EXHAUSTED, RetryInfo, QuotaFailure, HTTP 429,
 * Retry-After and the RateLimit fields of the limit that refused), and the
 * per-address limit of callers without a valid credential.
 */

const stores = ["memory", "redis"] as const;
const sharedRedis = "redis://127.0.0.1:6379";

/** Milliseconds of a RetryInfo's delay. */
function retryDelayMs(err: ConnectError): number {
  const [info] = err.findDetails(RetryInfoSchema);
  expect(info?.retryDelay, "RetryInfo detail").toBeDefined();
  return Number(info!.retryDelay!.seconds) * 1000 + info!.retryDelay!.nanos / 1e6;
}

/**
 * After the bucket ran dry: the times at which `count` calls were allowed
 * again, polling every 20 ms, so the gaps between them are the refill rate.
 */
async function refillTimes(call: () => Promise<unknown>, count: number): Promise<number[]> {
  const times: number[] = [];
  const deadline = performance.now() + 30_000;
  while (times.length < count && performance.now() < deadline) {
    const err = await outcome(call());
    if (err === undefined) times.push(performance.now());
    else if (err.code !== Code.ResourceExhausted) throw err;
    else await new Promise((r) => setTimeout(r, 20));
  }
  return times;
}

describe.each(databaseKinds)("rate limits on %s", (kind) => {
  describe.each(stores)("with buckets in %s", (store) => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startServer(kind, { env: { ...limitEnv(store === "redis" ? sharedRedis : undefined), ANVIL_TENANT_TIERS: JSON.stringify({ globex: "pro" }) } });
    });
    afterAll(() => server?.close());

    it.each([
      ["free", testTiers.free],
      ["pro", testTiers.pro],
    ] as const)("a %s key gets its burst at once, then its configured rate", async (tier, { burst, ratePerMinute }) => {
      const client = clientFor(WorkflowService, "connect-json", server.baseUrl, await keyOfTier(server, tier));
      const perMs = ratePerMinute / 60_000;
      const { allowed, elapsedMs, refusal } = await drain(() => client.listWorkflows({}));
      // The burst, plus what refilled while the burst was being spent.
      expect(allowed).toBeGreaterThanOrEqual(burst);
      expect(allowed).toBeLessThanOrEqual(burst + Math.floor(elapsedMs * perMs) + 1);
      expect(retryDelayMs(refusal)).toBeLessThanOrEqual(1 / perMs);

      const times = await refillTimes(() => client.listWorkflows({}), 4);
      expect(times).toHaveLength(4);
      const gap = (times[3]! - times[0]!) / 3;
      console.info(`${kind}/${store} ${tier}: ${allowed} allowed in ${Math.round(elapsedMs)} ms (burst ${burst}), then one every ${Math.round(gap)} ms (configured ${Math.round(1 / perMs)} ms)`);
      // One token every 1/rate: never faster; slower only by the polling and a loaded machine.
      expect(gap).toBeGreaterThanOrEqual(0.9 / perMs);
      expect(gap).toBeLessThanOrEqual(1.6 / perMs);
    });

    it("an API key created without a tier gets its tenant's default tier (else free)", async () => {
      const create = async (admin: string) =>
        (await clientFor(ApiKeyService, "connect-json", server.baseUrl, await server.token(admin)).createApiKey({ apiKey: { displayName: "no-tier", roles: ["viewer"] } })).apiKey!;
      expect((await create("globex-admin")).tier).toBe("pro");
      expect((await create("acme-admin")).tier).toBe("free");
    });

    it("service accounts of the unlimited tier are never limited and get no RateLimit fields", async () => {
      const client = clientFor(WorkflowService, "connect-json", server.baseUrl, await server.token("acme-viewer"));
      let header: Headers | undefined;
      for (let i = 0; i < testTiers.pro.burst * 3; i++) await client.listWorkflows({}, { onHeader: (h) => (header = h) });
      expect(header?.get("ratelimit")).toBeNull();
      expect(header?.get("ratelimit-policy")).toBeNull();
    });

    it.each(["connect-json", "connect-binary", "grpc-web", "grpc"] satisfies Protocol[])(
      "%s: answers carry the RateLimit fields, and the refusal is RESOURCE_EXHAUSTED with RetryInfo, QuotaFailure and Retry-After",
      async (protocol) => {
        const { id, secret } = await tieredKey(server, "free");
        const client = clientFor(WorkflowService, protocol, server.baseUrl, secret);
        let header: Headers | undefined;
        await client.listWorkflows({}, { onHeader: (h) => (header = h) });
        expect(header?.get("ratelimit-policy")).toBe(`"free";q=${testTiers.free.burst};w=5`);
        expect(header?.get("ratelimit")).toMatch(new RegExp(`^"free";r=${testTiers.free.burst - 1};t=[1-5]$`));

        const { refusal } = await drain(() => client.listWorkflows({}));
        expect(refusal.code).toBe(Code.ResourceExhausted);
        const delay = retryDelayMs(refusal);
        expect(delay).toBeGreaterThan(0);
        expect(delay).toBeLessThanOrEqual(1000);
        const [quota] = refusal.findDetails(QuotaFailureSchema);
        expect(quota?.violations[0]?.subject).toBe(`api_key:${id}`);
        expect(quota?.violations[0]?.description).toContain('"free"');
        // gRPC carries them in the trailers, Connect in the headers: either way in the error's metadata.
        expect(refusal.metadata.get("ratelimit-policy")).toBe(`"free";q=${testTiers.free.burst};w=5`);
        expect(refusal.metadata.get("ratelimit")).toBe(`"free";r=0;t=${Math.ceil(delay / 1000)}`);
        expect(refusal.metadata.get("retry-after")).toBe(String(Math.ceil(delay / 1000)));
      },
    );

    it("Connect and REST refuse with HTTP 429, Retry-After and the RateLimit fields", async () => {
      const secret = await keyOfTier(server, "free");
      const headers = { authorization: `Bearer ${secret}` };
      // Drained right before each call: the bucket refills a token a second, which a loaded machine can take between two calls.
      const dry = () => drain(() => clientFor(WorkflowService, "connect-json", server.baseUrl, secret).listWorkflows({}));
      await dry();
      const connect = await fetch(`${server.baseUrl}/anvil.workflows.v1.WorkflowService/ListWorkflows`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: "{}",
      });
      await dry();
      const rest = await fetch(`${server.baseUrl}/v1/workflows`, { headers });
      for (const res of [connect, rest]) {
        expect(res.status).toBe(429);
        expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
        expect(res.headers.get("ratelimit-policy")).toBe(`"free";q=${testTiers.free.burst};w=5`);
        expect(res.headers.get("ratelimit")).toMatch(/^"free";r=0;t=1$/);
        const body = (await res.json()) as { code: string; details: { type: string }[] };
        expect(body.code).toBe("resource_exhausted");
        expect(body.details.map((d) => d.type)).toEqual(expect.arrayContaining(["google.rpc.RetryInfo", "google.rpc.QuotaFailure"]));
      }
    });

    it("REST answers carry the RateLimit fields of the caller's tier", async () => {
      const res = await fetch(`${server.baseUrl}/v1/workflows`, { headers: { authorization: `Bearer ${await keyOfTier(server, "pro")}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get("ratelimit-policy")).toBe(`"pro";q=${testTiers.pro.burst};w=4`);
      expect(res.headers.get("ratelimit")).toMatch(new RegExp(`^"pro";r=${testTiers.pro.burst - 1};t=\\d$`));
    });

    it("a stream counts once when it opens, and is refused before it opens like a unary call", async () => {
      const secret = await keyOfTier(server, "free");
      const operations = clientFor(OperationService, "connect-json", server.baseUrl, secret);
      const watch = async () => {
        for await (const _ of operations.watchOperation({ id: "00000000-0000-4000-8000-000000000000" }));
      };
      // A stream that opens (then fails: no such operation) takes one token.
      expect((await outcome(watch()))?.code).toBe(Code.NotFound);
      const { allowed } = await drain(() => clientFor(WorkflowService, "connect-json", server.baseUrl, secret).listWorkflows({}));
      expect(allowed).toBeGreaterThanOrEqual(testTiers.free.burst - 1);
      expect(allowed).toBeLessThanOrEqual(testTiers.free.burst);
      const refused = await outcome(watch());
      expect(refused?.code).toBe(Code.ResourceExhausted);
      expect(refused?.metadata.get("ratelimit")).toMatch(/^"free";r=0;t=1$/);
      expect(refused?.findDetails(RetryInfoSchema)).toHaveLength(1);
    });
  });

  describe("per client address", () => {
    const addressLimit = { burst: 3, ratePerMinute: 60 };
    let server: TestServer;
    let direct: TestServer;
    let next = 1;
    /** A client address of its own for each test (the gateway trusts 127.0.0.1 as a proxy). */
    const address = () => `203.0.113.${next++}`;
    beforeAll(async () => {
      const env = { ANVIL_RATE_LIMIT_IP: JSON.stringify(addressLimit) };
      server = await startServer(kind, { env: { ...env, ANVIL_TRUSTED_PROXIES: "127.0.0.1, ::1" } });
      direct = await startServer(kind, { env });
    });
    afterAll(async () => {
      await server?.close();
      await direct?.close();
    });

    const workflows = (s: TestServer, headers: Record<string, string>) => clientFor(WorkflowService, "connect-json", s.baseUrl, headers);

    it("calls with a bad or missing credential get the address's burst, then RESOURCE_EXHAUSTED; health is exempt, /openapi.json limited", async () => {
      const from = address();
      const codes: Code[] = [];
      let first: ConnectError | undefined;
      for (let i = 0; i < addressLimit.burst + 1; i++) {
        const headers: Record<string, string> = i % 2 === 0 ? { "x-forwarded-for": from, authorization: "Bearer not-a-token" } : { "x-forwarded-for": from };
        const err = await outcome(workflows(server, headers).listWorkflows({}));
        first ??= err;
        codes.push(err!.code);
      }
      expect(codes.map((c) => Code[c])).toEqual([...Array(addressLimit.burst).fill("Unauthenticated"), "ResourceExhausted"]);
      expect(first?.metadata.get("ratelimit-policy")).toBe(`"ip";q=${addressLimit.burst};w=3`);
      expect(first?.metadata.get("ratelimit")).toMatch(new RegExp(`^"ip";r=${addressLimit.burst - 1};t=\\d$`));
      const refused = await outcome(workflows(server, { "x-forwarded-for": from }).listWorkflows({}));
      expect(refused?.findDetails(QuotaFailureSchema)[0]?.violations[0]?.subject).toBe(`ip:${from}`);
      expect(refused?.metadata.get("retry-after")).toBe("1");

      // Probes and gRPC health are never limited; the OpenAPI document is, per address.
      expect((await fetch(`${server.baseUrl}/healthz`, { headers: { "x-forwarded-for": from } })).status).toBe(200);
      expect((await fetch(`${server.baseUrl}/readyz`, { headers: { "x-forwarded-for": from } })).status).toBe(200);
      const health = await clientFor(Health, "grpc", server.baseUrl, { "x-forwarded-for": from }).check({});
      expect(health.status).toBe(1);
      const openapi = await fetch(`${server.baseUrl}/openapi.json`, { headers: { "x-forwarded-for": from } });
      expect(openapi.status).toBe(429);
      expect(openapi.headers.get("retry-after")).toBe("1");
      expect(openapi.headers.get("ratelimit")).toMatch(/^"ip";r=0;t=1$/);
      const elsewhere = await fetch(`${server.baseUrl}/openapi.json`, { headers: { "x-forwarded-for": address() } });
      expect(elsewhere.status).toBe(200);
      expect(elsewhere.headers.get("ratelimit-policy")).toBe(`"ip";q=${addressLimit.burst};w=3`);
    });

    it("while an address is refused, credentials from it are not verified: only ones already in use get through", async () => {
      const from = address();
      const used = await server.token("acme-viewer");
      await workflows(server, { "x-forwarded-for": from, authorization: `Bearer ${used}` }).listWorkflows({});
      for (let i = 0; i < addressLimit.burst; i++) await outcome(workflows(server, { "x-forwarded-for": from, authorization: "Bearer bad" }).listWorkflows({}));
      const guessed = await server.token("acme-editor");
      expect((await outcome(workflows(server, { "x-forwarded-for": from, authorization: `Bearer ${guessed}` }).listWorkflows({})))?.code).toBe(Code.ResourceExhausted);
      expect(await outcome(workflows(server, { "x-forwarded-for": from, authorization: `Bearer ${used}` }).listWorkflows({}))).toBeUndefined();
      // The same new credential from another address is verified and accepted.
      expect(await outcome(workflows(server, { "x-forwarded-for": address(), authorization: `Bearer ${guessed}` }).listWorkflows({}))).toBeUndefined();
      // And the refused address gets a call again once a token refilled (1 per second).
      await new Promise((r) => setTimeout(r, 1_100));
      expect((await outcome(workflows(server, { "x-forwarded-for": from, authorization: "Bearer bad" }).listWorkflows({})))?.code).toBe(Code.Unauthenticated);
    });

    it("X-Forwarded-For is honoured only from trusted proxies, and only its nearest untrusted hop", async () => {
      const client = address();
      // A client that writes its own X-Forwarded-For entries cannot pick its bucket: the nearest untrusted hop counts.
      for (let i = 0; i < addressLimit.burst; i++) {
        const spoofed = `198.51.100.${i}, ${client}`;
        expect((await outcome(workflows(server, { "x-forwarded-for": spoofed, authorization: "Bearer bad" }).listWorkflows({})))?.code).toBe(Code.Unauthenticated);
      }
      const err = await outcome(workflows(server, { "x-forwarded-for": `198.51.100.99, ${client}, 127.0.0.1` }).listWorkflows({}));
      expect(err?.code).toBe(Code.ResourceExhausted);
      expect(err?.findDetails(QuotaFailureSchema)[0]?.violations[0]?.subject).toBe(`ip:${client}`);

      // Without trusted proxies the header is ignored: every call counts against the socket's peer.
      const codes: string[] = [];
      for (let i = 0; i < addressLimit.burst + 1; i++) {
        const e = await outcome(workflows(direct, { "x-forwarded-for": address(), authorization: "Bearer bad" }).listWorkflows({}));
        codes.push(Code[e!.code]);
      }
      expect(codes.at(-1)).toBe("ResourceExhausted");
      const last = await outcome(workflows(direct, { "x-forwarded-for": address() }).listWorkflows({}));
      expect(last?.findDetails(QuotaFailureSchema)[0]?.violations[0]?.subject).toBe("ip:127.0.0.1");
    });

    it("refusals are counted by tier in /metrics", async () => {
      const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
      const ip = /anvil_rate_limit_refusals_total\{tier="ip"\} (\d+)/.exec(text);
      expect(Number(ip?.[1])).toBeGreaterThanOrEqual(3);
      expect(text).toMatch(/anvil_rate_limit_refusals_total\{tier="free"\} 0/);
    });
  });
});

describe("client addresses", () => {
  it("are the socket's peer unless it is a trusted proxy, then the nearest untrusted X-Forwarded-For hop", () => {
    const none = new ClientAddresses([]);
    expect(none.resolve("::ffff:10.1.2.3", "203.0.113.7")).toBe("10.1.2.3");
    expect(none.resolve(undefined, undefined)).toBe("unknown");
    const proxies = new ClientAddresses(["10.0.0.0/8", "::1"]);
    expect(proxies.resolve("10.0.0.5", "198.51.100.1, 203.0.113.7, 10.0.0.9")).toBe("203.0.113.7");
    expect(proxies.resolve("10.0.0.5", ["198.51.100.1", "203.0.113.8:5000"])).toBe("203.0.113.8");
    expect(proxies.resolve("::1", "[2001:DB8::1]:443")).toBe("2001:db8::1");
    // Only proxies all the way: the leftmost hop is the nearest the chain names.
    expect(proxies.resolve("10.0.0.5", "10.1.1.1, 10.2.2.2")).toBe("10.1.1.1");
    expect(proxies.resolve("10.0.0.5", undefined)).toBe("10.0.0.5");
    expect(proxies.resolve("192.0.2.1", "203.0.113.7")).toBe("192.0.2.1");
  });

  it("refuses configuration that makes no sense", () => {
    expect(() => loadConfig({ ANVIL_TRUSTED_PROXIES: "10.0.0.0/33" })).toThrow(/ANVIL_TRUSTED_PROXIES/);
    expect(() => loadConfig({ ANVIL_TRUSTED_PROXIES: "proxy.local" })).toThrow(/ANVIL_TRUSTED_PROXIES/);
    expect(() => loadConfig({ ANVIL_RATE_LIMIT_TIERS: '{"gold":{"burst":1,"ratePerMinute":1}}' })).toThrow(/not a limited tier/);
    expect(() => loadConfig({ ANVIL_RATE_LIMIT_TIERS: '{"free":{"burst":0,"ratePerMinute":1}}' })).toThrow(/burst/);
    expect(() => loadConfig({ ANVIL_RATE_LIMIT_IP: '{"burst":5}' })).toThrow(/ratePerMinute/);
    expect(() => loadConfig({ ANVIL_REDIS_URL: "http://127.0.0.1:6379" })).toThrow(/ANVIL_REDIS_URL/);
    expect(() => loadConfig({ ANVIL_TENANT_TIERS: '{"acme":"gold"}' })).toThrow(/ANVIL_TENANT_TIERS/);
    const config = loadConfig({ ANVIL_RATE_LIMIT_TIERS: '{"pro":{"burst":7,"ratePerMinute":30}}' });
    expect(config.rateLimits.tiers.pro).toEqual({ name: "pro", burst: 7, ratePerMinute: 30 });
    expect(config.rateLimits.tiers.free).toEqual({ name: "free", burst: 20, ratePerMinute: 10 });
    expect(config.rateLimits.tiers.enterprise).toEqual({ name: "enterprise", burst: 2000, ratePerMinute: 1000 });
  });
});
