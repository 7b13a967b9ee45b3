// The small rules of src/rpc/ called straight, without a gateway: enum
// mappings, the RateLimit fields, request ids, call facts for the audit log,
// client addresses behind proxies, timestamps, and what the audit log keeps
// of a request. Interceptors run in connect's in-memory router transport.
// Every expected value is written out here, not computed by the code under
// test.
import { create, createFileRegistry, type DescMessage, fromJson } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label as Label, FieldDescriptorProto_Type as Type, FieldMaskSchema, FileDescriptorProtoSchema, StructSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Agent_State } from "../gen/anvil/agents/v1/agents_pb.js";
import { CreateApiKeyResponseSchema } from "../gen/anvil/apikeys/v1/apikeys_pb.js";
import { ClaimTaskResponseSchema, ReportProgressRequestSchema } from "../gen/anvil/operations/v1/operations_pb.js";
import { CreateUserRequestSchema, GetUserRequestSchema, UpdateUserRequestSchema, UserSchema, UserService } from "../gen/anvil/users/v1/users_pb.js";
import type { LimitResult } from "../src/limits/rate-limiter.js";
import { holdsSecrets, isRedacted, redactedJson, requestResourceIds } from "../src/rpc/audit-redaction.js";
import { header, methodName, protocolOf, traceIdOf, userAgentOf } from "../src/rpc/call-facts.js";
import { ClientAddresses, parseCidr } from "../src/rpc/client-address.js";
import { enumMapping } from "../src/rpc/enum-mapping.js";
import { patchFromMask } from "../src/rpc/field-mask.js";
import { appliedLimitKey, rateLimitHeaders, rateLimitHeadersInterceptor, setRateLimitHeaders } from "../src/rpc/rate-limit-headers.js";
import { requestIdKey } from "../src/rpc/request-context.js";
import { requestIdHeader, requestIdInterceptor, requestIdOf } from "../src/rpc/request-id-interceptor.js";
import { dateOfTimestamp, optionalDate } from "../src/rpc/timestamps.js";
import { InvalidArgumentError } from "../src/shared/errors.js";
import { refusal, setting, usersWith } from "./support/in-memory-calls.js";

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("enum mappings", () => {
  const states = enumMapping([
    [Agent_State.ENABLED, "enabled"],
    [Agent_State.DISABLED, "disabled"],
  ] as const);

  it("converts both ways, and leaves unspecified and unknown numbers undefined", () => {
    expect([states.toDomain(Agent_State.ENABLED), states.toDomain(Agent_State.DISABLED)]).toEqual(["enabled", "disabled"]);
    expect(states.toDomain(Agent_State.UNSPECIFIED)).toBeUndefined();
    expect(states.toDomain(99)).toBeUndefined();
    expect([states.toMessage("enabled"), states.toMessage("disabled")]).toEqual([Agent_State.ENABLED, Agent_State.DISABLED]);
    expect(() => states.toMessage("gone" as "enabled")).toThrow("no enum value for gone");
  });

  it("requires a value for a field an update sets, naming the field and the choices", () => {
    expect(states.required(Agent_State.DISABLED, "agent.state")).toBe("disabled");
    const refused = (() => {
      try {
        states.required(Agent_State.UNSPECIFIED, "agent.state");
      } catch (err) {
        return err;
      }
    })();
    expect(refused).toBeInstanceOf(InvalidArgumentError);
    expect((refused as InvalidArgumentError).violations).toEqual([{ field: "agent.state", description: "must be one of enabled, disabled" }]);
  });
});

describe("RateLimit fields", () => {
  const free = { name: "free", burst: 20, ratePerMinute: 10 };
  const limit = (answer: LimitResult["answer"], policy = free): LimitResult => ({ policy, subject: "api_key:k", answer });

  it("describe the policy and what is left, seconds rounded up", () => {
    expect(rateLimitHeaders(limit({ allowed: true, remaining: 5, retryAfterMs: 0, fullInMs: 90_001 }))).toEqual([
      ["ratelimit-policy", '"free";q=20;w=120'],
      ["ratelimit", '"free";r=5;t=91'],
    ]);
    // The window is the time a bucket takes to refill from empty: 10 calls at 7 a minute, 85.7 s.
    expect(rateLimitHeaders(limit({ allowed: true, remaining: 1, retryAfterMs: 0, fullInMs: 1_000 }, { name: "odd", burst: 10, ratePerMinute: 7 }))[0]).toEqual([
      "ratelimit-policy",
      '"odd";q=10;w=86',
    ]);
  });

  it("say when the next call is allowed once none is left, and Retry-After only when refused", () => {
    expect(rateLimitHeaders(limit({ allowed: false, remaining: 0, retryAfterMs: 5_250, fullInMs: 120_000 }))).toEqual([
      ["ratelimit-policy", '"free";q=20;w=120'],
      ["ratelimit", '"free";r=0;t=6'],
      ["retry-after", "6"],
    ]);
    // The last token taken: nothing left, nothing to wait for yet: t is the time until full.
    expect(rateLimitHeaders(limit({ allowed: true, remaining: 0, retryAfterMs: 0, fullInMs: 12_000 }))[1]).toEqual(["ratelimit", '"free";r=0;t=12']);
    // Calls left: t is the time until full, whatever a refusal would wait.
    expect(rateLimitHeaders(limit({ allowed: true, remaining: 3, retryAfterMs: 4_000, fullInMs: 9_000 }))[1]).toEqual(["ratelimit", '"free";r=3;t=9']);
    // Never Retry-After: 0.
    expect(rateLimitHeaders(limit({ allowed: false, remaining: 0, retryAfterMs: 200, fullInMs: 1_000 }))[2]).toEqual(["retry-after", "1"]);
    expect(rateLimitHeaders(limit({ allowed: false, remaining: 0, retryAfterMs: 0, fullInMs: 1_000 }))[2]).toEqual(["retry-after", "1"]);
  });

  it("are set on headers only when a limit applied", () => {
    const headers = new Headers();
    setRateLimitHeaders(headers, undefined);
    expect([...headers]).toEqual([]);
    setRateLimitHeaders(headers, limit({ allowed: true, remaining: 5, retryAfterMs: 0, fullInMs: 1_000 }));
    expect([...headers]).toEqual([
      ["ratelimit", '"free";r=5;t=1'],
      ["ratelimit-policy", '"free";q=20;w=120'],
    ]);
  });

  it("go on every answer, errors included", async () => {
    const applied = limit({ allowed: true, remaining: 5, retryAfterMs: 0, fullInMs: 1_000 });
    const users = usersWith([setting(appliedLimitKey, applied), rateLimitHeadersInterceptor()]);
    let headers = new Headers();
    await users.getUser({ id: "u1" }, { onHeader: (h) => (headers = h) });
    expect(headers.get("ratelimit")).toBe('"free";r=5;t=1');
    const refused = await refusal(users.getUser({ id: "missing" }));
    expect([refused.code, refused.metadata.get("ratelimit-policy")]).toEqual([Code.NotFound, '"free";q=20;w=120']);
    // No limit applied (an unlimited caller): no fields.
    const unlimited = usersWith([rateLimitHeadersInterceptor()]);
    await unlimited.getUser({ id: "u1" }, { onHeader: (h) => (headers = h) });
    expect(headers.get("ratelimit")).toBeNull();
    const plain = await refusal(unlimited.getUser({ id: "missing" }));
    expect(plain.metadata.get("ratelimit")).toBeNull();
  });
});

describe("request ids", () => {
  it("keep a client's sane id and replace anything else with a fresh UUID", () => {
    for (const sane of ["a", "req-1._:X", "x".repeat(128)]) expect(requestIdOf(sane)).toBe(sane);
    for (const insane of [null, "", "x".repeat(129), "a b", "a/b", "é", "a\nb"]) expect(requestIdOf(insane)).toMatch(uuid);
    expect(requestIdOf(null)).not.toBe(requestIdOf(null));
  });

  it("are echoed on every answer, errors included, and the transport's own id is kept", async () => {
    const users = usersWith([requestIdInterceptor()]);
    let headers = new Headers();
    await users.getUser({ id: "u1" }, { headers: { [requestIdHeader]: "mine-1" }, onHeader: (h) => (headers = h) });
    expect(headers.get(requestIdHeader)).toBe("mine-1");
    await users.getUser({ id: "u1" }, { headers: { [requestIdHeader]: "not sane" }, onHeader: (h) => (headers = h) });
    expect(headers.get(requestIdHeader)).toMatch(uuid);
    const refused = await refusal(users.getUser({ id: "missing" }, { headers: { [requestIdHeader]: "mine-2" } }));
    expect(refused.metadata.get(requestIdHeader)).toBe("mine-2");
    const given = usersWith([setting(requestIdKey, "from-transport"), requestIdInterceptor()]);
    await given.getUser({ id: "u1" }, { headers: { [requestIdHeader]: "mine-3" }, onHeader: (h) => (headers = h) });
    expect(headers.get(requestIdHeader)).toBe("from-transport");
  });
});

describe("call facts", () => {
  it("name a method as package.Service/Method", () => {
    expect(methodName(UserService.method.getUser)).toBe("anvil.users.v1.UserService/GetUser");
  });

  it("tell the protocol from the content type", () => {
    const of = (type?: string) => protocolOf(new Headers(type === undefined ? {} : { "content-type": type }));
    expect([of("application/grpc-web+proto"), of("application/grpc-web-text"), of("application/grpc"), of("application/grpc+proto")]).toEqual([
      "grpc-web",
      "grpc-web",
      "grpc",
      "grpc",
    ]);
    expect([of("application/json"), of("application/proto"), of(), of("text/application/grpc")]).toEqual(["connect", "connect", "connect", "connect"]);
    expect(protocolOf({ "content-type": "application/grpc" })).toBe("grpc");
  });

  it("read the trace id of a valid traceparent only", () => {
    const id = "0af7651916cd43dd8448eb211c80319c";
    const of = (value: string) => traceIdOf({ traceparent: value });
    expect(of(`00-${id}-b7ad6b7169203331-01`)).toBe(id);
    expect(of(` 00-${id.toUpperCase()}-B7AD6B7169203331-01 `)).toBe(id);
    expect(of(`00-${"0".repeat(32)}-b7ad6b7169203331-01`)).toBe("");
    expect(of(`00-${id}-b7ad6b716920333-01`)).toBe("");
    expect(of(`x00-${id}-b7ad6b7169203331-01`)).toBe("");
    expect(of(`00-${id.slice(1)}-b7ad6b7169203331-01`)).toBe("");
    expect(traceIdOf({})).toBe("");
    expect(traceIdOf(new Headers())).toBe("");
  });

  it("bound the user agent, and read headers from either shape", () => {
    expect(userAgentOf({ "user-agent": "u".repeat(600) })).toBe("u".repeat(512));
    expect(userAgentOf(new Headers({ "user-agent": "curl/8" }))).toBe("curl/8");
    expect(userAgentOf({})).toBe("");
    expect(header({ "x-a": ["first", "second"] }, "x-a")).toBe("first");
    expect(header({ "x-a": "one" }, "x-a")).toBe("one");
    expect(header({}, "x-a")).toBeUndefined();
    expect(header(new Headers(), "x-a")).toBeUndefined();
    expect(header(new Headers({ "x-a": "" }), "x-a")).toBe("");
  });
});

describe("client addresses", () => {
  const proxies = new ClientAddresses(["10.0.0.0/8", "::1", "192.168.1.1"]);

  it("are the socket's peer unless it is a trusted proxy", () => {
    expect(new ClientAddresses([]).resolve("10.0.0.1", "1.1.1.1")).toBe("10.0.0.1");
    expect(proxies.resolve("8.8.8.8", "1.1.1.1")).toBe("8.8.8.8");
    expect(proxies.resolve("10.0.0.1", undefined)).toBe("10.0.0.1");
    expect(proxies.resolve(undefined, "1.1.1.1")).toBe("unknown");
    expect(proxies.resolve("", undefined)).toBe("unknown");
  });

  it("behind trusted proxies, are the nearest hop no trusted proxy wrote", () => {
    expect(proxies.resolve("10.0.0.1", "6.6.6.6, 1.1.1.1, 2.2.2.2, 10.9.9.9")).toBe("2.2.2.2");
    expect(proxies.resolve("10.0.0.1", ["6.6.6.6, 1.1.1.1", "10.9.9.9"])).toBe("1.1.1.1");
    expect(proxies.resolve("10.0.0.1", " 3.3.3.3 ,,")).toBe("3.3.3.3");
    // Only trusted hops: the leftmost, as near the client as the chain says.
    expect(proxies.resolve("10.0.0.1", "10.1.1.1, 192.168.1.1")).toBe("10.1.1.1");
    expect(proxies.resolve("10.0.0.1", "")).toBe("10.0.0.1");
    // A hop that is no address is kept, shortened, as the client's (it names one bucket).
    expect(proxies.resolve("10.0.0.1", `${"h".repeat(80)}, 10.1.1.1`)).toBe("h".repeat(64));
  });

  it("are normalised: ports, brackets and IPv4-mapped IPv6 dropped, IPv6 in lower case", () => {
    expect(proxies.resolve("::ffff:10.0.0.1", "4.4.4.4")).toBe("4.4.4.4");
    expect(proxies.resolve("::FFFF:8.8.8.8", "4.4.4.4")).toBe("8.8.8.8");
    expect(proxies.resolve("[::1]:443", "4.4.4.4")).toBe("4.4.4.4");
    expect(proxies.resolve("[::1]", "4.4.4.4")).toBe("4.4.4.4");
    expect(proxies.resolve("10.0.0.1:8080", "4.4.4.4")).toBe("4.4.4.4");
    expect(proxies.resolve("8.8.8.8:8080", undefined)).toBe("8.8.8.8");
    expect(proxies.resolve("2001:DB8::1", undefined)).toBe("2001:db8::1");
    expect(proxies.resolve("10.0.0.1", "[2001:DB8::2]:80")).toBe("2001:db8::2");
  });

  it("trust exactly the ranges given: a bare address is one host", () => {
    expect(proxies.resolve("11.0.0.1", "4.4.4.4")).toBe("11.0.0.1");
    expect(proxies.resolve("192.168.1.2", "4.4.4.4")).toBe("192.168.1.2");
    expect(proxies.resolve("::2", "4.4.4.4")).toBe("::2");
    const v6 = new ClientAddresses(["fd00::/8"]);
    expect(v6.resolve("fd12::1", "4.4.4.4")).toBe("4.4.4.4");
    expect(v6.resolve("fe00::1", "4.4.4.4")).toBe("fe00::1");
  });

  it("refuse proxy entries that are no address or range", () => {
    expect(parseCidr("10.0.0.0/8")).toEqual(["10.0.0.0", 8]);
    expect(parseCidr("10.0.0.0/0")).toEqual(["10.0.0.0", 0]);
    expect(parseCidr("10.0.0.0/32")).toEqual(["10.0.0.0", 32]);
    expect(parseCidr("::1/128")).toEqual(["::1", 128]);
    expect(parseCidr("::1")).toEqual(["::1", undefined]);
    expect(() => parseCidr("proxy.local")).toThrow('ANVIL_TRUSTED_PROXIES: "proxy.local" is not an IP address or CIDR range');
    expect(() => parseCidr("/8")).toThrow("is not an IP address");
    for (const bad of ["10.0.0.0/33", "::1/129", "10.0.0.0/-1", "10.0.0.0/8.5", "10.0.0.0/x"]) {
      expect(() => parseCidr(bad), bad).toThrow(`ANVIL_TRUSTED_PROXIES: ${JSON.stringify(bad)} has an invalid prefix length`);
    }
    expect(() => new ClientAddresses(["10.0.0.0/8", "nope"])).toThrow("is not an IP address");
  });
});

describe("timestamps", () => {
  it("become Dates truncated to the millisecond, the largest Timestamp included", () => {
    expect(dateOfTimestamp({ seconds: 1n, nanos: 999_999_999 } as never).getTime()).toBe(1_999);
    expect(dateOfTimestamp({ seconds: 253_402_300_799n, nanos: 999_999_999 } as never).toISOString()).toBe("9999-12-31T23:59:59.999Z");
    expect(dateOfTimestamp({ seconds: -1n, nanos: 500_000_000 } as never).getTime()).toBe(-500);
    expect(optionalDate(undefined)).toBeUndefined();
    expect(optionalDate({ seconds: 2n, nanos: 1_000_000 } as never)?.getTime()).toBe(2_001);
  });
});

describe("what the audit log keeps of a request", () => {
  /** The map entry of string to Secretive that Holder and MapOnly both nest. */
  const byKeyEntry = {
    name: "ByKeyEntry",
    field: [
      { name: "key", number: 1, type: Type.STRING, label: Label.OPTIONAL, jsonName: "key" },
      { name: "value", number: 2, type: Type.MESSAGE, label: Label.OPTIONAL, typeName: ".t.v1.Secretive", jsonName: "value" },
    ],
    options: { mapEntry: true },
  };
  /** Messages with secrets at every depth: own field, singular, list and map of messages, and recursion. */
  const file = createFileRegistry(
    create(FileDescriptorProtoSchema, {
      name: "t/v1/secrets.proto",
      package: "t.v1",
      syntax: "proto3",
      messageType: [
        {
          name: "Secretive",
          field: [
            { name: "token", number: 1, type: Type.STRING, label: Label.OPTIONAL, jsonName: "token", options: { debugRedact: true } },
            { name: "name", number: 2, type: Type.STRING, label: Label.OPTIONAL, jsonName: "name" },
          ],
        },
        {
          name: "Holder",
          field: [
            { name: "by_key", number: 1, type: Type.MESSAGE, label: Label.REPEATED, typeName: ".t.v1.Holder.ByKeyEntry", jsonName: "byKey" },
            { name: "list", number: 2, type: Type.MESSAGE, label: Label.REPEATED, typeName: ".t.v1.Secretive", jsonName: "list" },
            { name: "one", number: 3, type: Type.MESSAGE, label: Label.OPTIONAL, typeName: ".t.v1.Secretive", jsonName: "one" },
            { name: "plain", number: 4, type: Type.STRING, label: Label.OPTIONAL, jsonName: "plain" },
          ],
          nestedType: [
            byKeyEntry,
          ],
        },
        {
          name: "MapOnly",
          field: [{ name: "by_key", number: 1, type: Type.MESSAGE, label: Label.REPEATED, typeName: ".t.v1.MapOnly.ByKeyEntry", jsonName: "byKey" }],
          nestedType: [
            byKeyEntry,
          ],
        },
        { name: "ListOnly", field: [{ name: "list", number: 1, type: Type.MESSAGE, label: Label.REPEATED, typeName: ".t.v1.Secretive", jsonName: "list" }] },
        {
          name: "Loop",
          field: [
            { name: "next", number: 1, type: Type.MESSAGE, label: Label.OPTIONAL, typeName: ".t.v1.Loop", jsonName: "next" },
            { name: "label", number: 2, type: Type.STRING, label: Label.OPTIONAL, jsonName: "label" },
          ],
        },
        {
          name: "SecretLoop",
          field: [
            { name: "next", number: 1, type: Type.MESSAGE, label: Label.OPTIONAL, typeName: ".t.v1.SecretLoop", jsonName: "next" },
            { name: "key", number: 2, type: Type.STRING, label: Label.OPTIONAL, jsonName: "key", options: { debugRedact: true } },
          ],
        },
        {
          name: "Ids",
          field: [
            { name: "id", number: 1, type: Type.STRING, label: Label.OPTIONAL, jsonName: "id" },
            { name: "agent_id", number: 2, type: Type.STRING, label: Label.OPTIONAL, jsonName: "agentId" },
            { name: "request_id", number: 3, type: Type.STRING, label: Label.OPTIONAL, jsonName: "requestId" },
            { name: "count_id", number: 4, type: Type.INT32, label: Label.OPTIONAL, jsonName: "countId" },
            { name: "idea", number: 5, type: Type.STRING, label: Label.OPTIONAL, jsonName: "idea" },
            { name: "inner", number: 6, type: Type.MESSAGE, label: Label.OPTIONAL, typeName: ".t.v1.Ids", jsonName: "inner" },
            { name: "ids", number: 7, type: Type.STRING, label: Label.REPEATED, jsonName: "ids" },
          ],
        },
      ],
    }),
    () => undefined,
  );
  const type = (name: string): DescMessage => file.getMessage(`t.v1.${name}`)!;
  const redacted = (name: string, json: object) => {
    const schema = type(name);
    return redactedJson(schema, fromJson(schema, json as never));
  };

  it("finds secret fields at any depth, and none in a type that only refers to itself", () => {
    expect(isRedacted(type("Secretive").field.token!)).toBe(true);
    expect(isRedacted(type("Secretive").field.name!)).toBe(false);
    expect(["Secretive", "Holder", "MapOnly", "ListOnly", "SecretLoop"].map((n) => holdsSecrets(type(n)))).toEqual([true, true, true, true, true]);
    expect(holdsSecrets(type("Loop"))).toBe(false);
    expect(holdsSecrets(type("Ids"))).toBe(false);
    expect(holdsSecrets(StructSchema)).toBe(false);
    expect(holdsSecrets(ReportProgressRequestSchema)).toBe(true);
    expect(holdsSecrets(ClaimTaskResponseSchema)).toBe(true);
    expect(holdsSecrets(UserSchema)).toBe(false);
  });

  it("leaves out every secret: in the message, in nested messages, lists and maps of them", () => {
    expect(redacted("Secretive", { token: "s", name: "n" })).toEqual({ name: "n" });
    expect(
      redacted("Holder", {
        byKey: { a: { token: "s1", name: "a" }, b: { name: "b" } },
        list: [{ token: "s2", name: "l" }, { token: "s3" }],
        one: { token: "s4", name: "o" },
        plain: "p",
      }),
    ).toEqual({ byKey: { a: { name: "a" }, b: { name: "b" } }, list: [{ name: "l" }, {}], one: { name: "o" }, plain: "p" });
    expect(redacted("MapOnly", { byKey: { k: { token: "s", name: "n" } } })).toEqual({ byKey: { k: { name: "n" } } });
    expect(redacted("ListOnly", { list: [{ token: "s", name: "n" }] })).toEqual({ list: [{ name: "n" }] });
    expect(redacted("SecretLoop", { key: "s1", next: { key: "s2", next: { key: "s3" } } })).toEqual({ next: { next: {} } });
    expect(redacted("Loop", { label: "a", next: { label: "b" } })).toEqual({ label: "a", next: { label: "b" } });
    const response = create(CreateApiKeyResponseSchema, { secret: "anvil_x", apiKey: { id: "k" } });
    expect(redactedJson(CreateApiKeyResponseSchema, response)).toEqual({ apiKey: { id: "k" } });
    // The message itself is left as it was.
    expect(response.secret).toBe("anvil_x");
  });

  it("names the resource ids a request carries: id and *_id strings, also one level down, never request_id", () => {
    const ids = (json: object) => requestResourceIds(type("Ids"), fromJson(type("Ids"), json as never));
    expect(ids({ id: "a", agentId: "b", requestId: "r", countId: 3, idea: "i", ids: ["x"], inner: { id: "c", agentId: "d", inner: { id: "e" } } })).toEqual(["a", "b", "c"]);
    expect(ids({})).toEqual([]);
    expect(ids({ inner: { agentId: "d" } })).toEqual([]);
    expect(requestResourceIds(GetUserRequestSchema, create(GetUserRequestSchema, { id: "u1" }))).toEqual(["u1"]);
    expect(requestResourceIds(UpdateUserRequestSchema, create(UpdateUserRequestSchema, { user: { id: "u2", email: "e" } }))).toEqual(["u2"]);
    expect(requestResourceIds(CreateUserRequestSchema, create(CreateUserRequestSchema, { requestId: "r", user: { email: "e" } }))).toEqual([]);
  });
});

describe("update masks", () => {
  const paths = { title: "title", severity_level: "severity", "details.note": "note" } as const;
  const values = { title: "t", severity: 2, note: "n" };
  const mask = (...p: string[]) => create(FieldMaskSchema, { paths: p });
  const refusal = (work: () => unknown) => {
    try {
      work();
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidArgumentError);
      return err as InvalidArgumentError;
    }
    throw new Error("not refused");
  };

  it("patches the domain fields the mask's paths name, `*` all of them", () => {
    expect(patchFromMask(mask("severity_level", "details.note"), paths, values)).toEqual({ severity: 2, note: "n" });
    expect(patchFromMask(mask("*"), paths, values)).toEqual({ title: "t", severity: 2, note: "n" });
    expect(patchFromMask(mask("title", "*"), paths, values)).toEqual({ title: "t", severity: 2, note: "n" });
  });

  it("refuses an empty or missing mask, and names unknown paths once each, in order", () => {
    for (const empty of [undefined, mask()]) {
      const refused = refusal(() => patchFromMask(empty, paths, values));
      expect([refused.message, refused.violations]).toEqual(["invalid update_mask: must name at least one field", [{ field: "update_mask", description: "must name at least one field" }]]);
    }
    const refused = refusal(() => patchFromMask(mask("title", "colour", "colour", "severity", "toString"), paths, values));
    expect(refused.message).toBe("update_mask names fields that cannot be updated: colour, severity, toString");
    expect(refused.violations).toEqual([
      { field: "update_mask", description: 'unknown or immutable path "colour"' },
      { field: "update_mask", description: 'unknown or immutable path "severity"' },
      { field: "update_mask", description: 'unknown or immutable path "toString"' },
    ]);
    const many = refusal(() => patchFromMask(mask(...Array.from({ length: 25 }, (_, i) => `p${i}`)), paths, values));
    expect(many.violations.map((v) => v.description.slice(27, -1))).toEqual(Array.from({ length: 20 }, (_, i) => `p${i}`));
  });
});
