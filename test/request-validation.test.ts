import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FieldMaskSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { BatchCreateFindingsRequestSchema } from "../gen/anvil/findings/v1/findings_pb.js";
import { CreateUserRequestSchema, UpdateUserRequestSchema, type User_State } from "../gen/anvil/users/v1/users_pb.js";
import { compileRequestValidator } from "../src/rpc/validation/field-rules.js";
import { ensureProtoDeps, repoRoot, runBuf } from "./support/buf-cli.js";

// The request validator on its own (no server): protovalidate's violations as
// clients receive them, scoped by field behaviour and update masks, and the
// first pass that keeps oversized requests cheap.
describe("request validation (buf.validate rules, enforced by protovalidate)", () => {
  const createUser = compileRequestValidator(CreateUserRequestSchema);
  const updateUser = compileRequestValidator(UpdateUserRequestSchema);
  const id = "b7c1a3e0-2f4d-4c8e-9a61-0d5e3f7b9c21";
  const mask = (...paths: string[]) => create(FieldMaskSchema, { paths });

  it("reports every violated rule with the field's path and protovalidate's message", async () => {
    const violations = await createUser(
      create(CreateUserRequestSchema, {
        user: { email: "not-an-email", displayName: "x".repeat(201), roles: ["Admin", "ops", "ops"], state: 7 as User_State },
        requestId: "nope",
      }),
    );
    expect(violations).toEqual(
      expect.arrayContaining([
        { field: "user.email", description: "must be a valid email address" },
        { field: "user.display_name", description: "must be at most 200 characters" },
        { field: "user.roles", description: "repeated value must contain unique items" },
        { field: "user.roles[0]", description: "does not match regex pattern `^[a-z][a-z0-9_-]*$`" },
        { field: "user.state", description: "value must be one of the defined enum values" },
        { field: "request_id", description: "must be a valid UUID" },
      ]),
    );
    expect(violations).toHaveLength(6);
    expect(await createUser(create(CreateUserRequestSchema, {}))).toEqual([{ field: "user", description: "value is required" }]);
    expect(await createUser(create(CreateUserRequestSchema, { user: {} }))).toEqual([{ field: "user.email", description: "value is required" }]);
  });

  it("ignores the identifier on create (the server assigns it)", async () => {
    expect(await createUser(create(CreateUserRequestSchema, { user: { id: "garbage", email: "a@example.com" } }))).toEqual([]);
  });

  it("checks an update only on the masked fields, and requires its identifier", async () => {
    const user = { id, email: "not-an-email", displayName: "x".repeat(201) };
    expect(await updateUser(create(UpdateUserRequestSchema, { user, updateMask: mask("roles") }))).toEqual([]);
    expect(await updateUser(create(UpdateUserRequestSchema, { user, updateMask: mask("display_name") }))).toEqual([
      { field: "user.display_name", description: "must be at most 200 characters" },
    ]);
    expect(await updateUser(create(UpdateUserRequestSchema, { user: { ...user, id: "" }, updateMask: mask("roles") }))).toEqual([
      { field: "user.id", description: "value is required" },
    ]);
    expect(await updateUser(create(UpdateUserRequestSchema, { user: { ...user, id: "x" }, updateMask: mask("roles") }))).toEqual([
      { field: "user.id", description: "must be a valid UUID" },
    ]);
  });

  it("refuses NUL characters and unpaired surrogates in any string, once per string", async () => {
    const violations = await createUser(create(CreateUserRequestSchema, { user: { email: "a\0@example.com", displayName: "\uD800" } }));
    expect(violations).toEqual([
      { field: "user.email", description: "must not contain NUL characters" },
      { field: "user.display_name", description: "must be valid Unicode (unpaired surrogate)" },
    ]);
  });

  it("refuses a request far over a size limit on that alone, in a fraction of a millisecond", async () => {
    const roles = Array.from({ length: 100_000 }, (_, i) => `Role ${i} ${"x".repeat(72)}`);
    const message = create(CreateUserRequestSchema, { user: { email: "a@example.com", roles } });
    await createUser(message); // warm
    const start = performance.now();
    const violations = await createUser(message);
    const ms = performance.now() - start;
    expect(violations).toEqual([{ field: "user.roles", description: "must contain no more than 32 item(s)" }]);
    // protovalidate alone: seconds (every item's pattern). Not bounded under `npm run mutate` (MUTATION_RUN): instrumented code is slower.
    if (process.env.MUTATION_RUN !== "1") expect(ms).toBeLessThan(5);
    const huge = create(CreateUserRequestSchema, { user: { email: `${"a".repeat(4 << 20)}@example.com` } });
    expect(await createUser(huge)).toEqual([{ field: "user.email", description: "must be at most 254 characters" }]);
  });

  it("reports a value just over its limit once, along with the request's other violations", async () => {
    const roles = [...Array.from({ length: 32 }, (_, i) => `r${i}`), "Bad"];
    expect(await createUser(create(CreateUserRequestSchema, { user: { email: "a@example.com", roles } }))).toEqual([
      { field: "user.roles", description: "must contain no more than 32 item(s)" },
      { field: "user.roles[32]", description: "does not match regex pattern `^[a-z][a-z0-9_-]*$`" },
    ]);
  });

  it("names at most 100 violations per request", async () => {
    const batch = compileRequestValidator(BatchCreateFindingsRequestSchema);
    const requests = Array.from({ length: 150 }, () => ({}));
    const violations = await batch(create(BatchCreateFindingsRequestSchema, { requests }));
    expect(violations).toHaveLength(100);
    expect(violations[0]).toEqual({ field: "requests[0].finding", description: "value is required" });
  });

  it("validates a long batch in parts, naming each bad item by its index in the whole request", async () => {
    const batch = compileRequestValidator(BatchCreateFindingsRequestSchema);
    const good = { finding: { filePath: "src/a.ts", line: 1, severity: 3, issueType: "t", ruleId: "r1", message: "m", source: "s" } };
    const requests: object[] = Array.from({ length: 300 }, () => good);
    requests[250] = {};
    const violations = await batch(create(BatchCreateFindingsRequestSchema, { requests }));
    expect(violations).toEqual([{ field: "requests[250].finding", description: "value is required" }]);
  });

  it("stops at start-up when field_behavior REQUIRED and buf.validate required disagree", async () => {
    await ensureProtoDeps();
    const dir = mkdtempSync(join(tmpdir(), "anvil-required-"));
    try {
      cpSync(join(repoRoot, ".proto-deps"), join(dir, "deps"), { recursive: true });
      writeFileSync(join(dir, "buf.yaml"), "version: v2\nmodules:\n  - path: api\n  - path: deps\n");
      mkdirSync(join(dir, "api"));
      writeFileSync(
        join(dir, "api/t.proto"),
        [
          'syntax = "proto3";',
          "package t;",
          'import "google/api/field_behavior.proto";',
          "message CreateThingRequest { string name = 1 [(google.api.field_behavior) = REQUIRED]; }",
        ].join("\n"),
      );
      const built = await runBuf(["build", "--path", "api/t.proto", "-o", "image.binpb"], dir);
      expect(built, built.stderr).toMatchObject({ code: 0 });
      const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(join(dir, "image.binpb"))));
      const desc = registry.getMessage("t.CreateThingRequest")!;
      expect(() => compileRequestValidator(desc)).toThrow(/t\.CreateThingRequest\.name: .*REQUIRED.*must agree/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
