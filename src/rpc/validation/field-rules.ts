import { type DescField, type DescMessage, getOption, hasOption, ScalarType } from "@bufbuild/protobuf";
import { type FieldRules, Format, rules as rulesOption } from "../../../gen/anvil/api/v1/annotations_pb.js";
import { FieldBehavior, field_behavior } from "../../../gen/google/api/field_behavior_pb.js";
import type { FieldViolation } from "../../shared/errors.js";

/**
 * Validates a request message against the rules its protos declare
 * (`google.api.field_behavior` and `anvil.api.v1.rules`), plus two rules
 * every string obeys: no NUL character and no unpaired UTF-16 surrogate —
 * PostgreSQL refuses the first and silently mangles the second, so both are
 * refused at the edge. Validators are compiled once per message type.
 */
export type MessageValidator = (message: object) => FieldViolation[];

/**
 * Builds the validator for a request type. When the request has an
 * `update_mask`, the resource it updates is checked only on the masked
 * paths (its `IDENTIFIER` field is then required), as AIP-134 prescribes;
 * otherwise `IDENTIFIER` and `OUTPUT_ONLY` fields are ignored.
 */
export function compileRequestValidator(desc: DescMessage): MessageValidator {
  const maskField = desc.fields.find((f) => f.name === "update_mask" && f.message?.typeName === "google.protobuf.FieldMask");
  const check = compileMessage(desc, new Map());
  return (message) => {
    const out: FieldViolation[] = [];
    const mask = maskField ? maskPaths(message, maskField) : undefined;
    check(message as Record<string, unknown>, "", out, mask === undefined ? createMode : { level: "request", update: mask });
    return out;
  };
}

// Where a message sits: the request itself, the resource a request carries
// (its direct fields), or anything nested deeper. Only at the resource level
// of an update does the mask matter.
interface Mode {
  readonly level: "request" | "resource" | "nested";
  /** Top-level paths of the update mask, when the request is an update. */
  readonly update?: ReadonlySet<string> | undefined;
}
const createMode: Mode = { level: "request" };
const nestedMode: Mode = { level: "nested" };

type Check = (message: Record<string, unknown>, prefix: string, out: FieldViolation[], mode: Mode) => void;

function compileMessage(desc: DescMessage, cache: Map<string, Check>): Check {
  const cached = cache.get(desc.typeName);
  if (cached) return cached;
  // Self-referencing messages: register a forwarder before compiling fields.
  let compiled: Check = () => {};
  cache.set(desc.typeName, (m, p, o, mode) => compiled(m, p, o, mode));
  const checks = desc.fields.map((field) => compileField(field, cache));
  compiled = (message, prefix, out, mode) => {
    for (const check of checks) check(message, prefix, out, mode);
  };
  return compiled;
}

function compileField(field: DescField, cache: Map<string, Check>): Check {
  const behaviors = hasOption(field, field_behavior) ? getOption(field, field_behavior) : [];
  const outputOnly = behaviors.includes(FieldBehavior.OUTPUT_ONLY);
  const identifier = behaviors.includes(FieldBehavior.IDENTIFIER);
  const required = behaviors.includes(FieldBehavior.REQUIRED);
  const rules = hasOption(field, rulesOption) ? getOption(field, rulesOption) : undefined;
  const valueCheck = compileValue(field, rules, cache);
  const read = reader(field);
  return (message, prefix, out, mode) => {
    // Output-only fields are the server's to set; whatever a client sends is ignored.
    if (outputOnly) return;
    const inUpdate = mode.level === "resource" && mode.update !== undefined;
    if (identifier && mode.level === "resource" && !inUpdate) return; // assigned by the server on create
    if (inUpdate && !identifier && !mode.update!.has(field.name) && !mode.update!.has("*")) return;
    const value = read(message);
    const path = prefix + field.name;
    if (isEmpty(field, value)) {
      if (required || (identifier && inUpdate)) out.push({ field: path, description: "is required" });
      return;
    }
    const inner: Mode = mode.level === "request" ? { level: "resource", update: mode.update } : nestedMode;
    valueCheck(value, path, out, inner);
  };
}

type ValueCheck = (value: unknown, path: string, out: FieldViolation[], mode: Mode) => void;

function compileValue(field: DescField, rules: FieldRules | undefined, cache: Map<string, Check>): ValueCheck {
  switch (field.fieldKind) {
    case "scalar":
      return compileScalar(field.scalar, rules);
    case "enum": {
      const values = new Set(field.enum.values.map((v) => v.number));
      return rules?.definedOnly
        ? (v, path, out) => {
            if (!values.has(v as number)) out.push({ field: path, description: `is not a known ${field.enum.name} value` });
          }
        : () => {};
    }
    case "message":
      return compileNested(field.message, cache);
    case "list": {
      const item: ValueCheck =
        field.listKind === "message"
          ? compileNested(field.message, cache)
          : field.listKind === "scalar"
            ? compileScalar(field.scalar, rules?.items ? { ...rules.items, maxItems: 0 } as unknown as FieldRules : undefined)
            : () => {};
      return (value, path, out) => {
        const list = value as unknown[];
        if (rules?.maxItems && list.length > rules.maxItems) {
          out.push({ field: path, description: `must have at most ${rules.maxItems} items` });
        }
        if (rules?.unique && new Set(list).size !== list.length) out.push({ field: path, description: "must not repeat items" });
        for (let i = 0; i < list.length; i++) item(list[i], `${path}[${i}]`, out, nestedMode);
      };
    }
    case "map": {
      const item: ValueCheck =
        field.mapKind === "message" ? compileNested(field.message, cache) : field.mapKind === "scalar" ? compileScalar(field.scalar, undefined) : () => {};
      return (value, path, out) => {
        const entries = Object.entries(value as Record<string, unknown>);
        if (rules?.maxItems && entries.length > rules.maxItems) {
          out.push({ field: path, description: `must have at most ${rules.maxItems} entries` });
        }
        for (const [k, v] of entries) {
          stringIntegrity(k, `${path}[${JSON.stringify(k)}]`, out);
          item(v, `${path}[${JSON.stringify(k)}]`, out, nestedMode);
        }
      };
    }
  }
}

function compileNested(desc: DescMessage, cache: Map<string, Check>): ValueCheck {
  // Struct, Value and ListValue surface as plain JSON; wrappers as primitives.
  if (desc.typeName === "google.protobuf.Struct" || desc.typeName === "google.protobuf.Value" || desc.typeName === "google.protobuf.ListValue") {
    return (value, path, out) => walkJson(value, path, out);
  }
  if (desc.typeName === "google.protobuf.StringValue") return (value, path, out) => stringIntegrity(value as string, path, out);
  const check = compileMessage(desc, cache);
  return (value, path, out, mode) => check(value as Record<string, unknown>, `${path}.`, out, mode);
}

function compileScalar(scalar: ScalarType, rules: FieldRules | undefined): ValueCheck {
  if (scalar === ScalarType.STRING) {
    const format = rules?.format ?? Format.UNSPECIFIED;
    const pattern = formatPatterns[format];
    const minLen = rules?.minLen ?? 0;
    const maxLen = rules?.maxLen ?? 0;
    return (value, path, out) => {
      const s = value as string;
      if (!stringIntegrity(s, path, out)) return;
      if (maxLen > 0 && s.length > maxLen && codePoints(s) > maxLen) {
        out.push({ field: path, description: `must be at most ${maxLen} characters` });
      }
      if (minLen > 0 && codePoints(s) < minLen) out.push({ field: path, description: `must be at least ${minLen} characters` });
      if (pattern && !pattern.test(s)) out.push({ field: path, description: formatDescriptions[format] ?? "has the wrong format" });
    };
  }
  if (rules && (rules.hasMin || rules.hasMax)) {
    const min = rules.min;
    const max = rules.max;
    return (value, path, out) => {
      const n = typeof value === "bigint" ? value : BigInt(value as number);
      if (rules.hasMin && n < min) out.push({ field: path, description: `must be at least ${min}` });
      if (rules.hasMax && n > max) out.push({ field: path, description: `must be at most ${max}` });
    };
  }
  return () => {};
}

const formatPatterns: Partial<Record<Format, RegExp>> = {
  [Format.EMAIL]: /^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$/,
  [Format.UUID]: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  [Format.TOKEN]: /^[a-z][a-z0-9_-]*$/,
};
const formatDescriptions: Partial<Record<Format, string>> = {
  [Format.EMAIL]: "must be an e-mail address",
  [Format.UUID]: "must be a UUID",
  [Format.TOKEN]: "must be a lowercase token ([a-z][a-z0-9_-]*)",
};

/** Reports NUL characters and unpaired surrogates; true when the string is clean. */
function stringIntegrity(s: string, path: string, out: FieldViolation[]): boolean {
  if (s.includes("\0")) {
    out.push({ field: path, description: "must not contain NUL characters" });
    return false;
  }
  if (!s.isWellFormed()) {
    out.push({ field: path, description: "must be valid Unicode (unpaired surrogate)" });
    return false;
  }
  return true;
}

function walkJson(value: unknown, path: string, out: FieldViolation[]): void {
  if (typeof value === "string") stringIntegrity(value, path, out);
  else if (Array.isArray(value)) value.forEach((v, i) => walkJson(v, `${path}[${i}]`, out));
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      stringIntegrity(k, `${path}.${k}`, out);
      walkJson(v, `${path}.${k}`, out);
    }
  }
}

function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function reader(field: DescField): (message: Record<string, unknown>) => unknown {
  const oneof = field.oneof;
  if (oneof) {
    return (m) => {
      const o = m[oneof.localName] as { case?: string; value?: unknown } | undefined;
      return o?.case === field.localName ? o.value : undefined;
    };
  }
  return (m) => m[field.localName];
}

function isEmpty(field: DescField, value: unknown): boolean {
  if (value === undefined || value === null) return true;
  switch (field.fieldKind) {
    case "list":
      return (value as unknown[]).length === 0;
    case "map":
      return Object.keys(value as object).length === 0;
    case "message":
      return false;
    default:
      return value === "" || value === 0 || value === 0n || value === false || (value instanceof Uint8Array && value.length === 0);
  }
}

function maskPaths(message: object, maskField: DescField): ReadonlySet<string> {
  const mask = (message as Record<string, { paths?: string[] } | undefined>)[maskField.localName];
  return new Set((mask?.paths ?? []).map((p) => p.split(".")[0] as string));
}
