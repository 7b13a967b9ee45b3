// Micro-benchmark of request validation alone (no transport, no database):
// the per-call cost of the validation interceptor's check for typical and
// for large requests. `npx tsx bench/micro/validation.ts`
import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import {
  BatchCreateFindingsRequestSchema,
  CorrelateAlertRequestSchema,
  Finding_Severity,
} from "../../gen/anvil/findings/v1/findings_pb.js";
import { CreateUserRequestSchema, UpdateUserRequestSchema } from "../../gen/anvil/users/v1/users_pb.js";
import { compileRequestValidator } from "../../src/rpc/validation/field-rules.js";

const finding = (i: number) => ({
  finding: {
    filePath: `src/module-${i}/file.ts`,
    line: 10 + i,
    severity: Finding_Severity.HIGH,
    issueType: "null-deref",
    ruleId: "eslint/no-unused-vars",
    message: "Possible null dereference of `user` before the check on the next line.",
    source: "eslint",
  },
});

async function measure<D extends DescMessage>(name: string, desc: D, init: MessageInitShape<D>, minMs = 400): Promise<void> {
  const validate = compileRequestValidator(desc);
  const message = create(desc, init);
  const violations = (await validate(message)).length;
  // Warm up (JIT, lazily built plans) before timing.
  for (const warm = performance.now(); performance.now() - warm < minMs / 2; ) await validate(message);
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < minMs || n < 5) {
    await validate(message);
    n++;
    elapsed = performance.now() - start;
  }
  const us = (elapsed * 1000) / n;
  console.log(`${name.padEnd(52)} ${us.toFixed(us < 100 ? 2 : 0).padStart(10)} µs/call  (${violations} violations)`);
}

const token = "b7c1a3e0-2f4d-4c8e-9a61-0d5e3f7b9c21";
await measure("CreateUser, valid", CreateUserRequestSchema, {
  user: { email: "ada@example.com", displayName: "Ada Lovelace", roles: ["admin", "editor"] },
  requestId: token,
});
await measure("UpdateUser, valid, mask display_name", UpdateUserRequestSchema, {
  user: { id: token, displayName: "Ada" },
  updateMask: create(FieldMaskSchema, { paths: ["display_name"] }),
});
await measure("CreateUser, 3 violations", CreateUserRequestSchema, {
  user: { email: "not-an-email", displayName: "x".repeat(201), roles: ["Admin"] },
});
await measure("BatchCreateFindings, 1,000 findings", BatchCreateFindingsRequestSchema, {
  requests: Array.from({ length: 1000 }, (_, i) => finding(i)),
});
await measure("BatchCreateFindings, 100,000 findings (over max_items)", BatchCreateFindingsRequestSchema, {
  requests: Array.from({ length: 100_000 }, (_, i) => finding(i)),
});
await measure("CorrelateAlert, 64 KiB stack trace", CorrelateAlertRequestSchema, {
  filePath: "src/a.ts",
  stackTrace: "a/".repeat(32 * 1024),
});
await measure("CorrelateAlert, 8 MiB stack trace (over max_len)", CorrelateAlertRequestSchema, {
  filePath: "src/a.ts",
  stackTrace: "a/".repeat(4 * 1024 * 1024),
});
await measure("CreateUser, 8 MiB email (over max_len, email format)", CreateUserRequestSchema, {
  user: { email: `${"a".repeat(8 * 1024 * 1024)}@example.com` },
});
await measure("CreateUser, 100,000 roles of 80 chars (over max_items)", CreateUserRequestSchema, {
  user: { email: "ada@example.com", roles: Array.from({ length: 100_000 }, (_, i) => `role-${i}-${"x".repeat(72)}`) },
});
