import { create, type DescField, type DescMessage, getOption, hasOption, type Message } from "@bufbuild/protobuf";
import { type Path, pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator, type Violation } from "@bufbuild/protovalidate";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { FieldBehavior } from "../../../gen/google/api/field_behavior_pb.js";
import type { FieldViolation } from "../../shared/errors.js";
import { behaviors, compileFieldBehaviorScope } from "./field-behavior.js";
import { firstPass } from "./first-pass.js";
import { setImmediate as nextTurn } from "node:timers/promises";
import { sliceMs } from "../../shared/time-slices.js";

/**
 * Validates a request message against the rules its protos declare with
 * protovalidate's `buf.validate` options, enforced by @bufbuild/protovalidate,
 * scoped by `google.api.field_behavior` and `update_mask` as AIP-203/134
 * prescribe (see field-behavior.ts), plus the string integrity every string
 * obeys (string-integrity.ts). Each violation becomes a field violation with
 * the field's path (`user.roles[2]`, `labels["k"]`) and protovalidate's
 * message as description. A first pass (first-pass.ts) checks string
 * integrity and the size limits the rules set; a request with a value far
 * over its limit is refused on those alone, so it costs one cheap pass.
 */
export type MessageValidator = (message: object) => Promise<FieldViolation[]>;

/**
 * At most this many violations are named per request: enough to fix a
 * request in one round trip, few enough that a list of thousands of bad items
 * cannot make the answer (gRPC trailers included) too large.
 */
export const maxViolations = 100;

/**
 * An update mask names at most this many paths. A resource has a dozen
 * updatable fields; a mask of 5,000 paths is no update, and every path is
 * work for the scope checks and the patch.
 */
export const maxMaskPaths = 100;

// One validator for the process: it plans each message type once, on first use.
const validator = createValidator();

/**
 * A top-level list of messages longer than this (a batch's `requests`) is
 * checked this many items at a time, yielding to the event loop between
 * parts when a part took its time slice: protovalidate walks every character
 * of every string, ~50 ms for a batch of 1,000 findings of 4,000 characters.
 */
const itemsPerPart = 100;

/**
 * Builds the validator for a request type, planning its rules now so that a
 * rule protovalidate cannot compile (a bad CEL expression, a rule on the
 * wrong type) stops the gateway at start-up instead of failing requests. It
 * also refuses a field documented `REQUIRED` (google.api.field_behavior) that
 * is not `(buf.validate.field).required`, so the two can never disagree.
 */
export function compileRequestValidator(desc: DescMessage): MessageValidator {
  assertRequiredDeclared(desc);
  const probe = validator.validate(desc, create(desc));
  if (probe.kind === "error") throw new Error(`buf.validate rules of ${desc.typeName}: ${probe.error.message}`);
  const scope = compileFieldBehaviorScope(desc);
  const maskField = desc.fields.find((f) => f.name === "update_mask" && f.message?.typeName === "google.protobuf.FieldMask");
  // The top-level list of messages a batch carries, validated in parts.
  const batchField = desc.fields.find((f) => f.fieldKind === "list" && f.listKind === "message");
  return async (message) => {
    if (maskField) {
      const paths = (message as Record<string, { paths?: string[] } | undefined>)[maskField.localName]?.paths;
      if (paths && paths.length > maxMaskPaths) return [{ field: maskField.name, description: `must name at most ${maxMaskPaths} paths` }];
    }
    const out: FieldViolation[] = [];
    const broken = new Set<string>();
    const reported = new Set<string>();
    let gross = false;
    for (const v of firstPass(desc, message)) {
      if (!scope.inScope(v.fields, message)) continue;
      gross ||= v.gross;
      reported.add(`${v.path}\0${v.description}`);
      if (v.kind === "integrity") broken.add(v.path);
      out.push({ field: v.path, description: v.description });
    }
    // Far over a limit, or as many violations as an answer names: protovalidate
    // would only add to a list that is cut anyway (found by the fuzzer: 1,000
    // items with a NUL each, and protovalidate's 6,000 more, blocked ~70 ms).
    if (gross || out.length >= maxViolations) return out.slice(0, maxViolations);
    for (const [resource, id] of scope.missingIdentifiers(message)) {
      out.push({ field: `${resource.name}.${id.name}`, description: "value is required" });
    }
    for await (const [part, offset] of parts(message, batchField)) {
      const result = validator.validate(desc, part as Message);
      if (result.kind === "error") throw result.error;
      if (result.kind !== "invalid") continue;
      for (const v of result.violations) {
        const path = offsetPath(pathToString(v.field), batchField, offset);
        const key = `${path}\0${v.message}`;
        // A string that is not clean text is reported once, for that; a
        // rule on a field beside the list is seen by every part, and named once.
        if (broken.has(path) || reported.has(key) || !scope.inScope(fieldsOf(v), message)) continue;
        reported.add(key);
        out.push({ field: path, description: v.message });
      }
      if (out.length >= maxViolations) break;
    }
    return out.length > maxViolations ? out.slice(0, maxViolations) : out;
  };
}

/**
 * The message to validate, in parts: whole, or — when its list field holds
 * more than `itemsPerPart` items — as copies holding one run of items each,
 * with the run's offset. The list's own size rules were checked by the first
 * pass on the whole list.
 */
async function* parts(message: object, list: DescField | undefined): AsyncGenerator<[object, number]> {
  const items = list && ((message as Record<string, unknown>)[list.localName] as unknown[]);
  if (!list || !items || items.length <= itemsPerPart) {
    yield [message, 0];
    return;
  }
  let sliceStart = performance.now();
  for (let offset = 0; offset < items.length; offset += itemsPerPart) {
    if (performance.now() - sliceStart >= sliceMs) {
      await nextTurn();
      sliceStart = performance.now();
    }
    yield [{ ...message, [list.localName]: items.slice(offset, offset + itemsPerPart) }, offset];
  }
}

/** `requests[3].x` of a part starting at item 200 is `requests[203].x` of the request. */
function offsetPath(path: string, list: DescField | undefined, offset: number): string {
  if (offset === 0 || !list || !path.startsWith(`${list.name}[`)) return path;
  const close = path.indexOf("]");
  return `${list.name}[${Number(path.slice(list.name.length + 1, close)) + offset}${path.slice(close)}`;
}

function fieldsOf(v: Violation): DescField[] {
  return (v.field as Path).filter((e): e is DescField => e.kind === "field");
}

function assertRequiredDeclared(root: DescMessage): void {
  const seen = new Set<string>();
  const visit = (desc: DescMessage): void => {
    if (seen.has(desc.typeName)) return;
    seen.add(desc.typeName);
    for (const f of desc.fields) {
      const required = hasOption(f, fieldRules) && getOption(f, fieldRules).required;
      if (behaviors(f).includes(FieldBehavior.REQUIRED) !== required) {
        throw new Error(`${f.parent.typeName}.${f.name}: google.api.field_behavior REQUIRED and (buf.validate.field).required must agree`);
      }
      if (f.message) visit(f.message);
    }
  };
  visit(root);
}
