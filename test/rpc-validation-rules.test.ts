// The request validation rules and the error mapping of src/rpc/ called
// straight, with the generated descriptors and messages, without a gateway:
// which fields google.api.field_behavior and an update mask put in scope, the
// limits a request validator enforces (at the limit accepted, one past
// refused), and what a domain error becomes on the wire. Every expected value
// is written out here, not computed by the code under test.
import { create, createFileRegistry, type DescField, type DescMessage, type DescService, setExtension } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label as Label, FieldDescriptorProto_Type as Type, FieldOptionsSchema, file_google_protobuf_field_mask, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createContextValues, createHandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { BatchCreateFindingsRequestSchema, CreateFindingRequestSchema, Finding_Severity, FindingSchema } from "../gen/anvil/findings/v1/findings_pb.js";
import { FieldBehavior, field_behavior } from "../gen/google/api/field_behavior_pb.js";
import { BadRequestSchema, ErrorInfoSchema, PreconditionFailureSchema } from "../gen/google/rpc/error_details_pb.js";
import { CreateUserRequestSchema, UpdateUserRequestSchema, type User, UserSchema, UserService } from "../gen/anvil/users/v1/users_pb.js";
import type { Principal } from "../src/auth/principal.js";
import { principalKey } from "../src/rpc/request-context.js";
import { resourceMethods } from "../src/rpc/resource-methods.js";
import { errorBudget, toConnectError, toStatus, truncate } from "../src/rpc/error-mapping.js";
import { behaviors, compileFieldBehaviorScope } from "../src/rpc/validation/field-behavior.js";
import { compileRequestValidator } from "../src/rpc/validation/field-rules.js";
import { DomainError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../src/shared/errors.js";

/** The field of `desc` called `name` (the test fails if there is none). */
function field(desc: DescMessage, name: string): DescField {
  const f = desc.fields.find((x) => x.name === name);
  if (!f) throw new Error(`${desc.typeName} has no field ${name}`);
  return f;
}

const user = field(UpdateUserRequestSchema, "user");
const updateMask = field(UpdateUserRequestSchema, "update_mask");
const email = field(UserSchema, "email");
const userId = field(UserSchema, "id");
const createTime = field(UserSchema, "create_time");

/** An UpdateUserRequest as the validators see it: a plain message whose mask names `paths`. */
const updateUser = (paths: string[] | undefined, fields: Record<string, unknown> = {}) =>
  create(UpdateUserRequestSchema, { user: { id: "0b8e3c2a-8d5e-4f3b-9c1d-2a7f6e5d4c3b", email: "a@example.com", ...fields }, ...(paths ? { updateMask: { paths } } : {}) });

/**
 * Request types no proto of Anvil has, to pin what makes a request an update
 * and what the compilers must survive: `OddRequest` has a FieldMask that is
 * not `update_mask` (declared first) and an `update_mask` that is no
 * FieldMask; `Node` refers to itself; `Nested` documents a nested field
 * REQUIRED without the buf.validate rule.
 */
const odd = (() => {
  const string = (name: string, number: number, options?: object) => ({ name, number, type: Type.STRING, label: Label.OPTIONAL, jsonName: name, ...(options ? { options } : {}) });
  const message = (name: string, number: number, typeName: string) => ({ name, number, type: Type.MESSAGE, label: Label.OPTIONAL, typeName, jsonName: name });
  const requiredByBehaviorOnly = create(FieldOptionsSchema);
  setExtension(requiredByBehaviorOnly, field_behavior, [FieldBehavior.REQUIRED]);
  const registry = createFileRegistry(
    create(FileDescriptorProtoSchema, {
      name: "t/v1/odd.proto",
      package: "t.v1",
      syntax: "proto3",
      dependency: ["google/protobuf/field_mask.proto"],
      messageType: [
        { name: "Node", field: [message("child", 1, ".t.v1.Node")] },
        { name: "Thing", field: [string("name", 1)] },
        { name: "OddRequest", field: [message("read_mask", 1, ".google.protobuf.FieldMask"), string("update_mask", 2), message("thing", 3, ".t.v1.Thing"), message("node", 4, ".t.v1.Node")] },
        { name: "Inner", field: [string("x", 1, requiredByBehaviorOnly)] },
        { name: "Nested", field: [message("inner", 1, ".t.v1.Inner")] },
        { name: "GetThingRequest", field: [string("id", 1)] },
        // The resource after a string and another message: found by its type, not its place.
        { name: "GetThingResponse", field: [string("note", 1), message("node", 2, ".t.v1.Node"), message("thing", 3, ".t.v1.Thing")] },
      ],
      service: [{ name: "ThingService", method: [{ name: "GetThing", inputType: ".t.v1.GetThingRequest", outputType: ".t.v1.GetThingResponse" }] }],
    }),
    (name: string) => (name === file_google_protobuf_field_mask.proto.name ? file_google_protobuf_field_mask : undefined),
  );
  const get = (name: string) => registry.getMessage(`t.v1.${name}`)!;
  return { request: get("OddRequest"), thing: get("Thing"), nested: get("Nested"), service: registry.getService("t.v1.ThingService")! };
})();

describe("field behaviors", () => {
  it("are read from google.api.field_behavior, none where the option is absent", () => {
    expect(behaviors(email)).toEqual([FieldBehavior.REQUIRED]);
    expect(behaviors(userId)).toEqual([FieldBehavior.IDENTIFIER]);
    expect(behaviors(field(UserSchema, "display_name"))).toEqual([]);
  });

  it("on an update, put in scope only the resource fields the mask names, `*` and `a.b` naming their top field", () => {
    const scope = compileFieldBehaviorScope(UpdateUserRequestSchema);
    expect(scope.inScope([user, email], updateUser(["email"]))).toBe(true);
    expect(scope.inScope([user, email], updateUser(["email.local"]))).toBe(true);
    expect(scope.inScope([user, email], updateUser(["*"]))).toBe(true);
    expect(scope.inScope([user, email], updateUser(["display_name"]))).toBe(false);
    expect(scope.inScope([user, email], updateUser(undefined))).toBe(false);
  });

  it("on an update, keep the identifier, the mask itself and the request's own fields in scope whatever the mask", () => {
    const scope = compileFieldBehaviorScope(UpdateUserRequestSchema);
    expect(scope.inScope([user, userId], updateUser(["display_name"]))).toBe(true);
    expect(scope.inScope([updateMask, field(updateMask.message!, "paths")], updateUser(["display_name"]))).toBe(true);
    expect(scope.inScope([user], updateUser(["display_name"]))).toBe(true);
    expect(scope.inScope([], updateUser(["display_name"]))).toBe(true);
  });

  it("never put OUTPUT_ONLY fields in scope, nor anything below them, on create or update", () => {
    const seconds = field(createTime.message!, "seconds");
    const update = compileFieldBehaviorScope(UpdateUserRequestSchema);
    expect(update.inScope([user, createTime], updateUser(["*"]))).toBe(false);
    expect(update.inScope([user, createTime, seconds], updateUser(["create_time"]))).toBe(false);
    const createScope = compileFieldBehaviorScope(CreateUserRequestSchema);
    const createUser = create(CreateUserRequestSchema, { user: { email: "a@example.com" } });
    expect(createScope.inScope([field(CreateUserRequestSchema, "user"), createTime], createUser)).toBe(false);
  });

  it("make a request an update only by a FieldMask named update_mask, and survive a type that refers to itself", () => {
    const scope = compileFieldBehaviorScope(odd.request);
    const message = { readMask: { paths: [] }, updateMask: "", thing: { name: "" } };
    expect(scope.inScope([field(odd.request, "thing"), field(odd.thing, "name")], message)).toBe(true);
    expect(scope.missingIdentifiers(message)).toEqual([]);
  });

  it("on create, leave out the resource's identifier (the server assigns it) and keep every other field", () => {
    const scope = compileFieldBehaviorScope(CreateUserRequestSchema);
    const createUser = create(CreateUserRequestSchema, { user: { email: "a@example.com" } });
    const resource = field(CreateUserRequestSchema, "user");
    expect(scope.inScope([resource, userId], createUser)).toBe(false);
    expect(scope.inScope([resource, email], createUser)).toBe(true);
    expect(scope.inScope([field(CreateUserRequestSchema, "request_id")], createUser)).toBe(true);
  });

  it("find an update's resource without its identifier, and none on create or without the resource", () => {
    const scope = compileFieldBehaviorScope(UpdateUserRequestSchema);
    expect(scope.missingIdentifiers(updateUser(["email"], { id: "" }))).toEqual([[user, userId]]);
    // A message built by hand rather than by create() may lack the key altogether.
    expect(scope.missingIdentifiers({ user: { email: "a@example.com" }, updateMask: { paths: ["email"] } })).toEqual([[user, userId]]);
    expect(scope.missingIdentifiers(updateUser(["email"]))).toEqual([]);
    expect(scope.missingIdentifiers({ updateMask: { paths: ["email"] } })).toEqual([]);
    expect(compileFieldBehaviorScope(CreateUserRequestSchema).missingIdentifiers(create(CreateUserRequestSchema, { user: {} }))).toEqual([]);
  });
});

/** A valid finding for a batch; `fields` override. */
const finding = (fields: Record<string, unknown> = {}) =>
  create(CreateFindingRequestSchema, {
    finding: create(FindingSchema, { filePath: "src/a.ts", line: 1, severity: Finding_Severity.LOW, issueType: "lint", message: "m", source: "eslint", ...fields }),
  });
const batch = (n: number, bad: (i: number) => Record<string, unknown> | undefined = () => undefined) =>
  create(BatchCreateFindingsRequestSchema, { requests: Array.from({ length: n }, (_, i) => finding(bad(i))) });

describe("request validators", () => {
  it("name a required field an update leaves out, and the identifier it must carry", async () => {
    const validate = compileRequestValidator(UpdateUserRequestSchema);
    expect(await validate(updateUser(["email"]))).toEqual([]);
    expect(await validate(updateUser(["email"], { id: "" }))).toEqual([{ field: "user.id", description: "value is required" }]);
    expect(await validate(updateUser(["email"], { email: "" }))).toEqual([{ field: "user.email", description: "value is required" }]);
    // Not in the mask: the stored email stays, so an empty one is no violation.
    expect(await validate(updateUser(["display_name"], { email: "" }))).toEqual([]);
  });

  it("count the paths of update_mask only, and refuse at start-up a nested REQUIRED without its buf.validate rule", async () => {
    const validate = compileRequestValidator(odd.request);
    expect(await validate(create(odd.request, { readMask: { paths: Array(101).fill("name") } }))).toEqual([]);
    expect(() => compileRequestValidator(odd.nested)).toThrow("t.v1.Inner.x: google.api.field_behavior REQUIRED and (buf.validate.field).required must agree");
  });

  it("accept an update mask of 100 paths and refuse one of 101, before any other rule", async () => {
    const validate = compileRequestValidator(UpdateUserRequestSchema);
    expect(await validate(updateUser(Array(100).fill("display_name")))).toEqual([]);
    expect(await validate(updateUser(Array(101).fill("display_name"), { id: "" }))).toEqual([{ field: "update_mask", description: "must name at most 100 paths" }]);
  });

  it("report a string over its limit and its pattern both, once each", async () => {
    const validate = compileRequestValidator(CreateFindingRequestSchema);
    expect(await validate(finding({ issueType: "a".repeat(128) }))).toEqual([]);
    const found = await validate(finding({ issueType: "A".repeat(129) }));
    expect(found.map((v) => v.field)).toEqual(["finding.issue_type", "finding.issue_type"]);
    expect(found.map((v) => v.description).sort()).toEqual(["does not match regex pattern `^[a-z][a-z0-9_-]*$`", "must be at most 128 characters"]);
  });

  it("report a broken string once, for its integrity, not for its other rules", async () => {
    const validate = compileRequestValidator(CreateFindingRequestSchema);
    const found = await validate(finding({ issueType: "lint\u0000" }));
    expect(found).toHaveLength(1);
    expect(found[0]!.field).toBe("finding.issue_type");
  });

  it("name a batch item's violation by its index in the whole request, past the first hundred", async () => {
    const validate = compileRequestValidator(BatchCreateFindingsRequestSchema);
    expect(await validate(batch(250, (i) => (i === 120 || i === 230 ? { line: 0 } : undefined)))).toEqual([
      { field: "requests[120].finding.line", description: "value is required" },
      { field: "requests[230].finding.line", description: "value is required" },
    ]);
  });

  it("name at most 100 violations, the first ones, however many the request has", async () => {
    const validate = compileRequestValidator(BatchCreateFindingsRequestSchema);
    // Two violations per item: 300 in all, the first part alone has 200.
    const found = await validate(batch(150, () => ({ line: 0, endLine: -1 })));
    expect(found).toHaveLength(100);
    expect(found[0]!.field).toBe("requests[0].finding.line");
    expect(found[99]!.field).toBe("requests[49].finding.end_line");
    // Integrity violations, found by the first pass, are cut the same way.
    const broken = await validate(batch(150, () => ({ message: "m\u0000" })));
    expect(broken).toHaveLength(100);
    expect(broken[99]!.field).toBe("requests[99].finding.message");
  });
});

describe("error mapping", () => {
  const correlationId = "c-1";

  it("sends an InvalidArgumentError's violations as BadRequest, and no BadRequest without any", () => {
    const mapped = toConnectError(new InvalidArgumentError("bad user", [{ field: "user.email", description: "value is required" }]), correlationId);
    expect(mapped.code).toBe(Code.InvalidArgument);
    expect(mapped.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => [v.field, v.description])).toEqual([["user.email", "value is required"]]);
    expect(toConnectError(new InvalidArgumentError("bad"), correlationId).findDetails(BadRequestSchema)).toEqual([]);
  });

  it("sends a FailedPreconditionError's violations as PreconditionFailure, and none without any", () => {
    const mapped = toConnectError(new FailedPreconditionError("not now", [{ type: "STATE", subject: "agents/a-1", description: "agent is disabled" }]), correlationId);
    expect(mapped.code).toBe(Code.FailedPrecondition);
    expect(mapped.findDetails(PreconditionFailureSchema)[0]?.violations.map((v) => [v.type, v.subject, v.description])).toEqual([["STATE", "agents/a-1", "agent is disabled"]]);
    expect(toConnectError(new FailedPreconditionError("not now"), correlationId).findDetails(PreconditionFailureSchema)).toEqual([]);
  });

  it("keeps violations within the byte budget: 3,000 bytes of text fit, one byte more does not", () => {
    const violations = (n: number, bytes: number) => Array.from({ length: n }, () => ({ field: "f".repeat(bytes / 2), description: "d".repeat(bytes / 2) }));
    const sent = (v: { field: string; description: string }[]) => toConnectError(new InvalidArgumentError("bad", v), correlationId).findDetails(BadRequestSchema)[0]?.fieldViolations.length;
    // 300 bytes each: exactly ten make 3,000 bytes.
    expect(sent(violations(20, 300))).toBe(10);
    // 400 bytes each (the most one field and description may hold): 7 fit, the 8th passes the budget.
    expect(sent(violations(20, 400))).toBe(7);
  });

  it("names at most 100 violations, the first ones", () => {
    const many = Array.from({ length: 150 }, (_, i) => ({ field: `f${i}`, description: "d" }));
    const sent = toConnectError(new InvalidArgumentError("bad", many), correlationId).findDetails(BadRequestSchema)[0]?.fieldViolations;
    expect(sent?.map((v) => v.field)).toEqual(many.slice(0, 100).map((v) => v.field));
  });

  it("maps a domain error class missing from the table to INTERNAL, its message kept from the client", () => {
    class UnmappedError extends DomainError {
      readonly reason = "UNMAPPED";
    }
    const mapped = toConnectError(new UnmappedError("select * from secrets failed"), correlationId);
    expect([mapped.code, mapped.rawMessage]).toEqual([Code.Internal, "internal error (correlation id c-1)"]);
  });

  it("reads a request that does not parse as the client's fault, and other INTERNAL errors as internal", () => {
    const parse = toConnectError(new ConnectError("parse binary: premature EOF", Code.Internal), correlationId);
    expect([parse.code, parse.rawMessage]).toEqual([Code.InvalidArgument, "request message does not parse"]);
    const other = toConnectError(new ConnectError("database said: relation x does not exist", Code.Internal), correlationId);
    expect([other.code, other.rawMessage]).toEqual([Code.Internal, "internal error (correlation id c-1)"]);
    expect(other.findDetails(ErrorInfoSchema)[0]?.reason).toBe("INTERNAL");
    const refused = new ConnectError("parse binary: not ours", Code.PermissionDenied);
    expect(toConnectError(refused, correlationId)).toBe(refused);
  });

  it("reports a batch item's error as a Status with the code and message its own call would have had", () => {
    const status = toStatus(new NotFoundError("task", "t-1"), correlationId);
    expect([status.code, status.message]).toEqual([Code.NotFound, new NotFoundError("task", "t-1").message]);
  });

  it("truncates text to a UTF-8 byte budget, never inside a character, marking the cut", () => {
    expect(truncate("abc", 9)).toBe("abc");
    expect(truncate("abcdefghij", 10)).toBe("abcdefghij");
    expect(truncate("abcdefghijk", 10)).toBe("abcdefg…");
    // "é" is two bytes: 10 bytes of five hold; 11 bytes of them are cut to 7 bytes, 3 whole ones.
    expect(truncate("ééééé", 10)).toBe("ééééé");
    expect(truncate("éééééé", 10)).toBe("ééé…");
    // Only a character cut at the end is dropped, not a replacement character the text holds.
    expect(truncate("\uFFFDabcdefgh", 10)).toBe("\uFFFDabcd…");
  });
});

describe("resource methods", () => {
  type Item = { id: string; email: string };
  /** Use cases that record what the standard methods hand them and answer with a fixed user. */
  function recording() {
    const calls: unknown[][] = [];
    const item: Item = { id: "u-1", email: "a@example.com" };
    const useCases = {
      get: async (_: unknown, id: string) => (calls.push(["get", id]), item),
      list: async (_: unknown, page: unknown) => (calls.push(["list", page]), { items: [item, { ...item, id: "u-2" }], nextPageToken: "next" }),
      create: async (_: unknown, input: unknown, requestId?: string) => (calls.push(["create", input, requestId]), item),
      update: async (_: unknown, id: string, patch: unknown, etag?: string) => (calls.push(["update", id, patch, etag]), item),
      delete: async (_: unknown, id: string, etag?: string) => void calls.push(["delete", id, etag]),
    };
    const handlers = resourceMethods(UserService, useCases, {
      schema: UserSchema,
      toMessage: (i: Item) => create(UserSchema, i),
      toNew: (sent: User) => ({ email: sent.email }),
      toPatch: (sent: User, mask) => ({ email: sent.email, paths: mask?.paths }),
    });
    return { calls, handlers };
  }
  function context(method: string, service: DescService = UserService) {
    const values = createContextValues().set(principalKey, { subject: "s", tenant: "t", roles: [], credential: "jwt", tier: "free" } as unknown as Principal);
    return createHandlerContext({ service, method: service.methods.find((m) => m.localName === method)!, protocolName: "connect", requestMethod: "POST", url: "http://x/", contextValues: values });
  }
  const call = (handlers: object, method: string, req: object, service?: DescService) =>
    (handlers as Record<string, (r: object, c: object) => Promise<Record<string, unknown>>>)[method]!(req, context(method, service));

  it("serve Get, List, Create, Update and Delete of the service's resource, answering the resource in its field", async () => {
    const { calls, handlers } = recording();
    expect(Object.keys(handlers).sort()).toEqual(["createUser", "deleteUser", "getUser", "listUsers", "updateUser"]);
    expect(((await call(handlers, "getUser", { id: "u-1" })).user as User).id).toBe("u-1");
    const listed = await call(handlers, "listUsers", { pageSize: 2, pageToken: "p" });
    expect([(listed.users as User[]).map((u) => u.id), listed.nextPageToken]).toEqual([["u-1", "u-2"], "next"]);
    expect(((await call(handlers, "updateUser", { user: { id: "u-1", email: "b@example.com", etag: "" }, updateMask: { paths: ["email"] } })).user as User).email).toBe("a@example.com");
    expect(calls.slice(0, 3)).toEqual([["get", "u-1"], ["list", { pageSize: 2, pageToken: "p" }], ["update", "u-1", { email: "b@example.com", paths: ["email"] }, undefined]]);
  });

  it("pass a request id and an etag on only when the client sent one", async () => {
    const { calls, handlers } = recording();
    await call(handlers, "createUser", { user: { email: "a@example.com" }, requestId: "" });
    await call(handlers, "createUser", { user: { email: "a@example.com" }, requestId: "r-1" });
    await call(handlers, "updateUser", { user: { id: "u-1", email: "b@example.com", etag: "e-1" }, updateMask: { paths: ["email"] } });
    await call(handlers, "deleteUser", { id: "u-1", etag: "" });
    await call(handlers, "deleteUser", { id: "u-1", etag: "e-2" });
    expect(calls).toEqual([
      ["create", { email: "a@example.com" }, undefined],
      ["create", { email: "a@example.com" }, "r-1"],
      ["update", "u-1", { email: "b@example.com", paths: ["email"] }, "e-1"],
      ["delete", "u-1", undefined],
      ["delete", "u-1", "e-2"],
    ]);
  });

  it("answer the resource in the response field of its type, whatever comes before it", async () => {
    const item = { id: "t-1", name: "thing" };
    const unused = async () => {
      throw new Error("not called");
    };
    const handlers = resourceMethods(odd.service, { get: async () => item, list: unused, create: unused, update: unused, delete: unused }, {
      schema: odd.thing,
      toMessage: (i: typeof item) => create(odd.thing, { name: i.name }),
      toNew: () => item,
    });
    const answer = await call(handlers, "getThing", { id: "t-1" }, odd.service);
    expect([(answer.thing as { name: string }).name, answer.note, answer.node]).toEqual(["thing", "", undefined]);
  });
});
