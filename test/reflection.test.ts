import { create, type DescMethod, fromBinary, getOption, hasOption, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { GrpcReflection } from "grpc-js-reflection-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { permission } from "../gen/anvil/api/v1/annotations_pb.js";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { http } from "../gen/google/api/annotations_pb.js";
import { FieldBehavior, field_behavior as fieldBehavior } from "../gen/google/api/field_behavior_pb.js";
import {
  type ServerReflectionResponse,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
} from "../gen/grpc/reflection/v1/reflection_pb.js";
import { apiServices, infrastructureServices } from "../src/server/services.js";
import { runBuf } from "./support/buf-cli.js";
import { clientFor } from "./support/clients.js";
import { databaseKinds } from "./support/databases.js";
import { startServer, type TestServer } from "./support/server.js";

/** `buf curl` over cleartext HTTP/2 with the gRPC protocol, schema from reflection only. */
function bufCurl(server: TestServer, ...args: string[]) {
  return runBuf(["curl", "--http2-prior-knowledge", "--protocol", "grpc", ...args]);
}

type Request = MessageInitShape<typeof ServerReflectionRequestSchema>;

/**
 * One ServerReflectionInfo stream over @grpc/grpc-js, messages in the v1
 * wire format (v1alpha's is identical, only the path differs). Answers
 * arrive in request order.
 */
function reflectionStream(port: number, version: "v1" | "v1alpha", metadata: Record<string, string> = {}) {
  const definition: grpc.ServiceDefinition = {
    ServerReflectionInfo: {
      path: `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
      requestStream: true,
      responseStream: true,
      requestSerialize: (value: Request) => Buffer.from(toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, value))),
      requestDeserialize: (bytes: Buffer) => fromBinary(ServerReflectionRequestSchema, bytes),
      responseSerialize: (value: ServerReflectionResponse) => Buffer.from(toBinary(ServerReflectionResponseSchema, value)),
      responseDeserialize: (bytes: Buffer) => fromBinary(ServerReflectionResponseSchema, bytes),
    },
  };
  const Client = grpc.makeGenericClientConstructor(definition, "ServerReflection");
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  const call = (client as unknown as Record<string, (md: grpc.Metadata) => grpc.ClientDuplexStream<Request, ServerReflectionResponse>>)
    .ServerReflectionInfo!.call(client, md);
  const pending: { resolve: (r: ServerReflectionResponse) => void; reject: (e: Error) => void }[] = [];
  call.on("data", (res: ServerReflectionResponse) => pending.shift()?.resolve(res));
  call.on("error", (err: Error) => {
    for (const p of pending.splice(0)) p.reject(err);
  });
  return {
    ask: (request: Request) =>
      new Promise<ServerReflectionResponse>((resolve, reject) => {
        pending.push({ resolve, reject });
        call.write(request);
      }),
    close: () => {
      call.end();
      client.close();
    },
  };
}

function fileNames(res: ServerReflectionResponse): string[] {
  if (res.messageResponse.case !== "fileDescriptorResponse") throw new Error(`expected files, got ${res.messageResponse.case}`);
  return res.messageResponse.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
}

function errorCode(res: ServerReflectionResponse): number | undefined {
  return res.messageResponse.case === "errorResponse" ? res.messageResponse.value.errorCode : undefined;
}

const NOT_FOUND = grpc.status.NOT_FOUND;

describe.each(databaseKinds)("gRPC server reflection on %s", (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(kind);
  });
  afterAll(() => server?.close());

  describe("buf curl with no schema but reflection", () => {
    it("lists the services", async () => {
      const out = await bufCurl(server, "--list-services", server.baseUrl);
      expect(out.stderr).toBe("");
      const listed = out.stdout.trim().split("\n").sort();
      expect(listed).toEqual([...apiServices, ...infrastructureServices].map((s) => s.typeName).sort());
      expect(listed).toEqual(expect.arrayContaining(["anvil.users.v1.UserService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]));
    });

    it("lists every method of UserService", async () => {
      const out = await bufCurl(server, "--list-methods", server.baseUrl);
      expect(out.code).toBe(0);
      const methods = out.stdout.trim().split("\n");
      for (const m of UserService.methods) expect(methods).toContain(`anvil.users.v1.UserService/${m.name}`);
    });

    it("calls UserService.ListUsers described by reflection", async () => {
      const token = await server.token();
      const created = await clientFor(UserService, "connect-json", server.baseUrl, token).createUser({
        user: { email: "reflected@example.com", displayName: "Reflected", roles: ["viewer"] },
      });
      const out = await bufCurl(
        server,
        "--reflect",
        "-H",
        `authorization: Bearer ${token}`,
        "-d",
        '{"page_size": 10}',
        `${server.baseUrl}/anvil.users.v1.UserService/ListUsers`,
      );
      expect(out.stderr).toBe("");
      const body = JSON.parse(out.stdout) as { users: { id: string; email: string }[] };
      expect(body.users).toContainEqual(expect.objectContaining({ id: created.user!.id, email: "reflected@example.com" }));
    });

    it("calls every API service's List methods that need no arguments", async () => {
      const token = await server.token();
      const needsNoArguments = (m: DescMethod) =>
        m.input.fields.every((f) => !hasOption(f, fieldBehavior) || !getOption(f, fieldBehavior).includes(FieldBehavior.REQUIRED));
      const lists = apiServices.flatMap((service) =>
        service.methods
          .filter((m) => m.name.startsWith("List") && m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS && needsNoArguments(m))
          .map((method) => ({ service, method })),
      );
      expect(lists.map((l) => l.method.name)).toContain("ListUsers");
      for (const { service, method } of lists) {
        const out = await bufCurl(server, "-H", `authorization: Bearer ${token}`, "-d", "{}", `${server.baseUrl}/${service.typeName}/${method.name}`);
        expect({ method: method.name, stderr: out.stderr, code: out.code }).toEqual({ method: method.name, stderr: "", code: 0 });
        expect(JSON.parse(out.stdout)).toBeTypeOf("object");
      }
    });

    it("still needs a token for the API itself", async () => {
      const out = await bufCurl(server, "-d", "{}", `${server.baseUrl}/anvil.users.v1.UserService/ListUsers`);
      expect(out.code).not.toBe(0);
      expect(out.stderr).toMatch(/not authenticated|unauthenticated/i);
    });
  });

  describe("grpc-js-reflection-client", () => {
    for (const version of ["v1", "v1alpha"] as const) {
      it(`lists services and resolves anvil.users.v1.User with its imports over ${version}`, async () => {
        const client = new GrpcReflection(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure(), {}, version);
        expect(await client.listServices()).toContain("anvil.users.v1.UserService");
        const descriptor = await client.getDescriptorBySymbol("anvil.users.v1.User");
        const root = descriptor.getProtobufJsRoot();
        expect(root.lookupType("anvil.users.v1.User").fields.email).toBeDefined();
        expect(root.lookupType("google.protobuf.Timestamp")).toBeDefined();
        expect(root.lookup("anvil.api.v1.FieldRules")).not.toBeNull();
        // Read from the root rather than with listMethods: that re-encodes the
        // root through protobufjs, whose round trip merges files sharing a
        // package and then trips over google.api.field_behavior (1052) twice —
        // with canonical per-file descriptors from any server, grpc-go's too.
        const service = root.lookupService("anvil.users.v1.UserService");
        expect(Object.keys(service.methods).sort()).toEqual(UserService.methods.map((m) => m.name).sort());
      });
    }
  });

  describe("the reflection protocol over @grpc/grpc-js", () => {
    for (const version of ["v1", "v1alpha"] as const) {
      it(`sends a file with all its transitive imports, each once per stream (${version})`, async () => {
        const stream = reflectionStream(server.port, version);
        try {
          const first = fileNames(await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: "anvil.users.v1.User" } }));
          expect(first[0]).toBe("anvil/users/v1/users.proto");
          expect(first).toEqual(expect.arrayContaining([
            "google/protobuf/timestamp.proto",
            "google/protobuf/field_mask.proto",
            "anvil/api/v1/annotations.proto",
            "google/api/annotations.proto",
            "google/api/http.proto", // imported by google/api/annotations.proto: transitive
            "google/protobuf/descriptor.proto",
          ]));
          expect(new Set(first).size).toBe(first.length);
          // Asked again on the same stream: the imports are already known.
          const again = fileNames(await stream.ask({ messageRequest: { case: "fileByFilename", value: "anvil/users/v1/users.proto" } }));
          expect(again).toEqual(["anvil/users/v1/users.proto"]);
        } finally {
          stream.close();
        }
      });
    }

    it("finds the file of every kind of symbol", async () => {
      const stream = reflectionStream(server.port, "v1");
      try {
        const fileOf = async (symbol: string) =>
          fileNames(await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: symbol } }))[0];
        expect(await fileOf("anvil.users.v1.UserService")).toBe("anvil/users/v1/users.proto");
        expect(await fileOf("anvil.users.v1.UserService.ListUsers")).toBe("anvil/users/v1/users.proto");
        expect(await fileOf("anvil.users.v1.User.State")).toBe("anvil/users/v1/users.proto"); // nested enum
        expect(await fileOf("anvil.users.v1.User.STATE_ACTIVE")).toBe("anvil/users/v1/users.proto"); // its value
        expect(await fileOf("anvil.users.v1.User.email")).toBe("anvil/users/v1/users.proto"); // field
        expect(await fileOf("anvil.api.v1.permission")).toBe("anvil/api/v1/annotations.proto"); // extension
        expect(await fileOf("google.protobuf.Timestamp")).toBe("google/protobuf/timestamp.proto");
        expect(await fileOf("grpc.health.v1.Health")).toBe("grpc/health/v1/health.proto");
      } finally {
        stream.close();
      }
    });

    it("answers extension lookups", async () => {
      const stream = reflectionStream(server.port, "v1");
      try {
        const byExtension = await stream.ask({
          messageRequest: { case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: http.number } },
        });
        expect(fileNames(byExtension)[0]).toBe("google/api/annotations.proto");
        const numbers = await stream.ask({ messageRequest: { case: "allExtensionNumbersOfType", value: "google.protobuf.MethodOptions" } });
        expect(numbers.messageResponse.case).toBe("allExtensionNumbersResponse");
        const value = numbers.messageResponse.value as { baseTypeName: string; extensionNumber: number[] };
        expect(value.baseTypeName).toBe("google.protobuf.MethodOptions");
        expect(value.extensionNumber).toEqual(expect.arrayContaining([http.number, permission.number]));
      } finally {
        stream.close();
      }
    });

    it("answers NOT_FOUND for unknown names and discloses nothing outside the served closure", async () => {
      const stream = reflectionStream(server.port, "v1");
      try {
        const ask = (messageRequest: Request["messageRequest"]) => stream.ask({ messageRequest });
        expect(errorCode(await ask({ case: "fileContainingSymbol", value: "anvil.users.v1.Nope" }))).toBe(NOT_FOUND);
        expect(errorCode(await ask({ case: "fileByFilename", value: "anvil/nope/v1/nope.proto" }))).toBe(NOT_FOUND);
        // Linked into the process, imported by nothing served: not disclosed.
        expect(errorCode(await ask({ case: "fileByFilename", value: "google/rpc/error_details.proto" }))).toBe(NOT_FOUND);
        expect(errorCode(await ask({ case: "fileContainingSymbol", value: "google.rpc.BadRequest" }))).toBe(NOT_FOUND);
        // (google.rpc.Status is served: anvil.operations.v1 imports it.)
        expect(errorCode(await ask({ case: "fileContainingSymbol", value: "google.rpc.RetryInfo" }))).toBe(NOT_FOUND);
        expect(errorCode(await ask({ case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 1 } }))).toBe(NOT_FOUND);
        expect(errorCode(await ask({ case: "allExtensionNumbersOfType", value: "anvil.nope.v1.Nope" }))).toBe(NOT_FOUND);
        // The stream is still usable after errors.
        const list = await ask({ case: "listServices", value: "" });
        expect(list.messageResponse.case).toBe("listServicesResponse");
      } finally {
        stream.close();
      }
    });
  });

  describe("with ANVIL_REFLECTION=authenticated", () => {
    let guarded: TestServer;
    beforeAll(async () => {
      guarded = await startServer(kind, { env: { ANVIL_REFLECTION: "authenticated" } });
    });
    afterAll(() => guarded?.close());

    it("refuses reflection without a token and serves it with one", async () => {
      const anonymous = await bufCurl(guarded, "--list-services", guarded.baseUrl);
      expect(anonymous.code).not.toBe(0);
      expect(anonymous.stderr).toMatch(/not authenticated|unauthenticated/i);
      const token = await guarded.token("acme-viewer");
      const authorized = await bufCurl(guarded, "--list-services", "--reflect-header", `authorization: Bearer ${token}`, guarded.baseUrl);
      expect(authorized.stderr).toBe("");
      expect(authorized.stdout).toContain("anvil.users.v1.UserService");
    });

    it("requires the reflection.read permission", async () => {
      const stream = reflectionStream(guarded.port, "v1", { authorization: `Bearer ${await guarded.token("acme-worker")}` });
      try {
        await expect(stream.ask({ messageRequest: { case: "listServices", value: "" } })).rejects.toMatchObject({
          code: grpc.status.PERMISSION_DENIED,
        });
      } finally {
        stream.close();
      }
    });

    it("keeps health public", async () => {
      const out = await bufCurl(guarded, "--schema", "node_modules/grpc-health-check/proto/health/v1/health.proto", "-d", "{}", `${guarded.baseUrl}/grpc.health.v1.Health/Check`);
      expect(out.stderr).toBe("");
      expect(JSON.parse(out.stdout)).toEqual({ status: "SERVING" });
    });
  });
});
