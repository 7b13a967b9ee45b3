import { create, createFileRegistry, type DescService, setExtension } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, MethodOptionsSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { permission } from "../gen/anvil/api/v1/annotations_pb.js";
import { UserService } from "../gen/anvil/users/v1/users_pb.js";
import { declaredPermissions, readMethodPolicies } from "../src/rpc/method-policies.js";
import { apiServices, publicApiServices } from "../src/server/services.js";

/**
 * Start-up reads each method's `(anvil.api.v1.permission)` from the
 * descriptors and refuses to serve a method that declares none, so that no
 * RPC is ever served open by omission.
 */

/**
 * A service `test.v1.ProbeService` with methods `Declared` (permission
 * `probes.read`) and `Undeclared` (per `undeclared`), built from a
 * FileDescriptorProto the way the generated code embeds one.
 */
function probeService(undeclared: { permission?: string }): DescService {
  const options = (value: string | undefined) => {
    if (value === undefined) return undefined;
    const o = create(MethodOptionsSchema);
    setExtension(o, permission, value);
    return o;
  };
  const file = create(FileDescriptorProtoSchema, {
    name: "test/v1/probe.proto",
    package: "test.v1",
    syntax: "proto3",
    messageType: [{ name: "ProbeRequest" }, { name: "ProbeResponse" }],
    service: [
      {
        name: "ProbeService",
        method: [
          { name: "Declared", inputType: ".test.v1.ProbeRequest", outputType: ".test.v1.ProbeResponse", options: options("probes.read") },
          {
            name: "Undeclared",
            inputType: ".test.v1.ProbeRequest",
            outputType: ".test.v1.ProbeResponse",
            options: options(undeclared.permission),
          },
        ],
      },
    ],
  });
  const service = createFileRegistry(file, () => undefined).getService("test.v1.ProbeService");
  if (!service) throw new Error("descriptor did not build");
  return service;
}

describe("readMethodPolicies", () => {
  it("refuses a service with a method that declares no permission", () => {
    const service = probeService({});
    expect(() => readMethodPolicies([UserService, service], new Set())).toThrow(
      /test\.v1\.ProbeService\.Undeclared declares no valid \(anvil\.api\.v1\.permission\)/,
    );
  });

  it.each(["", "read", "Users.Read", "users.read; drop"])("refuses a malformed permission %j", (value) => {
    expect(() => readMethodPolicies([probeService({ permission: value })], new Set())).toThrow(/ProbeService\.Undeclared/);
  });

  it("accepts the same service once every method declares a permission", () => {
    const service = probeService({ permission: "probes.write" });
    const policies = readMethodPolicies([service], new Set());
    expect(service.methods.map((m) => policies.get(m))).toEqual([
      { public: false, permission: "probes.read" },
      { public: false, permission: "probes.write" },
    ]);
  });

  it("serves an undeclared method only when its whole service is configured public", () => {
    const service = probeService({});
    const policies = readMethodPolicies([service], new Set(["test.v1.ProbeService"]));
    expect(policies.get(service.method.undeclared!)).toEqual({ public: true, permission: "" });
  });

  it("accepts UserService with the permissions its proto declares", () => {
    const policies = readMethodPolicies([UserService], new Set());
    const byName = Object.fromEntries(UserService.methods.map((m) => [m.name, policies.get(m)?.permission]));
    expect(byName).toEqual({
      GetUser: "users.read",
      ListUsers: "users.read",
      CreateUser: "users.write",
      UpdateUser: "users.write",
      DeleteUser: "users.write",
    });
    expect(declaredPermissions(policies)).toEqual(new Set(["users.read", "users.write"]));
  });

  it("accepts every service the gateway serves, with its public ones (SignInService) as it serves them", () => {
    const policies = readMethodPolicies(apiServices, publicApiServices);
    expect(policies.size).toBe(apiServices.reduce((n, s) => n + s.methods.length, 0));
  });
});
