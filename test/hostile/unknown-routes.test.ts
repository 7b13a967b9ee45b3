import * as grpc from "@grpc/grpc-js";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserService } from "../../gen/anvil/users/v1/users_pb.js";
import { BodyLimits } from "../../src/server/body-limits.js";
import { databaseKinds } from "../support/databases.js";
import { startServer, type TestServer } from "../support/server.js";

/** One HTTP/2 request; status, headers with trailers merged, body. */
async function h2(baseUrl: string, headers: http2.OutgoingHttpHeaders, body?: Uint8Array) {
  const session = http2.connect(baseUrl);
  try {
    const stream = session.request(headers);
    stream.end(body);
    return await new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let all: Record<string, unknown> = {};
      stream.on("response", (h) => (all = { ...h }));
      stream.on("trailers", (t) => Object.assign(all, t));
      stream.on("data", (d: Buffer) => chunks.push(d));
      stream.on("end", () => resolve({ status: Number(all[":status"]), headers: all, body: Buffer.concat(chunks) }));
      stream.on("error", reject);
    });
  } finally {
    session.close();
  }
}

const emptyEnvelope = new Uint8Array(5);

describe.each(databaseKinds)("unknown routes and methods (%s)", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("answers an unknown gRPC method with HTTP 200 and grpc-status 12, as grpc-go does", async () => {
    const method = await h2(server.baseUrl, { ":method": "POST", ":path": "/anvil.users.v1.UserService/Nope", "content-type": "application/grpc" }, emptyEnvelope);
    expect(method.status).toBe(200);
    expect(method.headers["grpc-status"]).toBe("12");
    expect(method.headers["grpc-message"]).toBe("unknown method Nope for service anvil.users.v1.UserService");
    const service = await h2(server.baseUrl, { ":method": "POST", ":path": "/anvil.nope.v1.NopeService/Get", "content-type": "application/grpc+proto" }, emptyEnvelope);
    expect(service.status).toBe(200);
    expect(service.headers["grpc-status"]).toBe("12");
    expect(service.headers["grpc-message"]).toBe("unknown service anvil.nope.v1.NopeService");
  });

  it("answers an unknown gRPC-Web method with grpc-status 12 in its trailer frame", async () => {
    const res = await fetch(`${server.baseUrl}/anvil.users.v1.UserService/Nope`, { method: "POST", headers: { "content-type": "application/grpc-web+proto" }, body: emptyEnvelope });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body[0]).toBe(0x80);
    expect(body.subarray(5).toString()).toMatch(/grpc-status: ?12/);
  });

  it("grpc-js reads UNIMPLEMENTED (not an HTTP error it cannot parse) for an unknown method", async () => {
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const status = await new Promise<grpc.ServiceError>((resolve) =>
        client.makeUnaryRequest(
          "/anvil.users.v1.UserService/Nope",
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.alloc(0),
          (err) => resolve(err!),
        ),
      );
      expect(status.code, status.details).toBe(grpc.status.UNIMPLEMENTED);
      expect(status.details).toBe("unknown method Nope for service anvil.users.v1.UserService");
    } finally {
      client.close();
    }
  });

  it("keeps HTTP 404 JSON for unknown Connect and REST routes", async () => {
    const connect = await fetch(`${server.baseUrl}/anvil.users.v1.UserService/Nope`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(connect.status).toBe(404);
    expect(((await connect.json()) as { code: string }).code).toBe("not_found");
    const rest = await fetch(`${server.baseUrl}/v1/nope`);
    expect(rest.status).toBe(404);
  });

  it("sends Allow with every 405", async () => {
    // Connect GET on a method with side effects: connect's own 405.
    const get = await fetch(`${server.baseUrl}/anvil.users.v1.UserService/CreateUser?encoding=json&message=%7B%7D`);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    const put = await fetch(`${server.baseUrl}/anvil.users.v1.UserService/CreateUser`, { method: "PUT", headers: { "content-type": "application/json" }, body: "{}" });
    expect(put.status).toBe(405);
    expect(put.headers.get("allow")).toBe("POST");
    const rest = await fetch(`${server.baseUrl}/v1/users`, { method: "PUT" });
    expect(rest.status).toBe(405);
    expect(rest.headers.get("allow")).toBeTruthy();
    const probe = await fetch(`${server.baseUrl}/healthz`, { method: "POST" });
    expect(probe.status).toBe(405);
    expect(probe.headers.get("allow")).toBe("GET, HEAD");
  });
});

describe("per-method body limits", () => {
  const method = UserService.method.createUser;
  it("gives a method its own limit and every other the default", () => {
    const limits = new BodyLimits(1024, UserService.methods, new Map([["anvil.users.v1.UserService/CreateUser", 64]]));
    expect(limits.forMethod(method)).toBe(64);
    expect(limits.forMethod(UserService.method.listUsers)).toBe(1024);
    expect(limits.anyOwn(UserService.methods)).toBe(true);
  });
  it("refuses a limit for a method that is not served", () => {
    expect(() => new BodyLimits(1024, UserService.methods, new Map([["anvil.users.v1.UserService/Typo", 64]]))).toThrow(/not a served method/);
  });
});
