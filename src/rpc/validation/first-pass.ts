import { type DescField, type DescMessage, getOption, hasOption } from "@bufbuild/protobuf";
import { field as fieldRulesOption } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { structBudgetViolation, structLimits } from "./struct-budget.js";

/**
 * One cheap pass over a request, before protovalidate runs, for two things:
 *
 * - String integrity, a rule every string obeys whatever its field: no NUL
 *   character and no unpaired UTF-16 surrogate. PostgreSQL refuses the first
 *   and silently mangles the second. It is a property of the storage, not of
 *   a field, so it lives here rather than as a `buf.validate` rule repeated
 *   on every string field.
 * - The size limits the `buf.validate` rules set (`string.max_len`,
 *   `repeated.max_items`, `repeated.items.string.max_len`, `map.max_pairs`),
 *   read from the same rules. protovalidate evaluates every rule of every
 *   item, so a list far over its limit costs it time in proportion to the
 *   list (seconds for 100,000 items) and a string far over its limit is
 *   still counted and matched against its pattern. When a value is more
 *   than twice over its limit, the caller reports the first pass's findings
 *   and skips protovalidate; such a list is not descended into here either.
 *   The wording is protovalidate's own, so a client reads the same message
 *   whichever pass found it.
 * - The limits on free-form JSON (struct-budget.ts), which the transport
 *   checks before decoding on the paths that decode themselves; here for
 *   the rest (Connect GET, gRPC-Web text, streams).
 */
export interface FirstPassViolation {
  /** Fields from the request down to the value (for field-behavior scoping). */
  readonly fields: readonly DescField[];
  /** The path as clients see it, e.g. `user.roles[2]`. */
  readonly path: string;
  readonly description: string;
  /** A string that is not clean text, or a value over its size limit. */
  readonly kind: "integrity" | "size";
  /**
   * A value more than twice over its size limit: enough that protovalidate
   * should not read it (a value just over its limit is reported along with
   * every other violation of the request, by protovalidate as well).
   */
  readonly gross: boolean;
}

interface Limits {
  readonly maxLen?: number;
  readonly itemMaxLen?: number;
  readonly maxItems?: number;
  readonly maxPairs?: number;
}

const limitsCache = new WeakMap<DescField, Limits>();

/** The `repeated.max_items` of a list field, if its rules set one. */
export function maxItemsOf(field: DescField): number | undefined {
  return limitsOf(field).maxItems;
}

function limitsOf(field: DescField): Limits {
  let limits = limitsCache.get(field);
  if (limits) return limits;
  limits = {};
  if (hasOption(field, fieldRulesOption)) {
    const t = getOption(field, fieldRulesOption).type;
    const own = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k); // proto2 presence
    if (t.case === "string" && own(t.value, "maxLen")) limits = { maxLen: Number(t.value.maxLen) };
    if (t.case === "repeated") {
      const item = t.value.items?.type;
      limits = {
        ...(own(t.value, "maxItems") ? { maxItems: Number(t.value.maxItems) } : {}),
        ...(item?.case === "string" && own(item.value, "maxLen") ? { itemMaxLen: Number(item.value.maxLen) } : {}),
      };
    }
    if (t.case === "map" && own(t.value, "maxPairs")) limits = { maxPairs: Number(t.value.maxPairs) };
  }
  limitsCache.set(field, limits);
  return limits;
}

/** Free-form JSON values seen so far in one request. */
interface JsonBudget {
  values: number;
  over: boolean;
}

export function firstPass(desc: DescMessage, message: object): FirstPassViolation[] {
  const out: FirstPassViolation[] = [];
  walkMessage(desc, message as Record<string, unknown>, [], "", out, { values: 0, over: false });
  return out;
}

function walkMessage(desc: DescMessage, message: Record<string, unknown>, fields: DescField[], prefix: string, out: FirstPassViolation[], budget: JsonBudget): void {
  for (const field of desc.fields) {
    const value = read(field, message);
    if (value === undefined || value === null) continue;
    const path = prefix + field.name;
    const at = [...fields, field];
    const limits = limitsOf(field);
    switch (field.fieldKind) {
      case "scalar":
        if (typeof value === "string") checkString(value, limits.maxLen, at, path, out);
        break;
      case "message":
        walkNested(field.message, value, at, path, out, budget);
        break;
      case "list": {
        const list = value as unknown[];
        if (limits.maxItems !== undefined && list.length > limits.maxItems) {
          out.push({ fields: at, path, description: `must contain no more than ${limits.maxItems} item(s)`, kind: "size", gross: list.length > 2 * limits.maxItems });
          if (list.length > 2 * limits.maxItems) break; // not worth reading further
        }
        list.forEach((item, i) => {
          if (field.listKind === "scalar" && typeof item === "string") checkString(item, limits.itemMaxLen, at, `${path}[${i}]`, out);
          else if (field.listKind === "message") walkNested(field.message, item, at, `${path}[${i}]`, out, budget);
        });
        break;
      }
      case "map": {
        const entries = Object.entries(value as Record<string, unknown>);
        if (limits.maxPairs !== undefined && entries.length > limits.maxPairs) {
          out.push({ fields: at, path, description: `map must be at most ${limits.maxPairs} entries`, kind: "size", gross: entries.length > 2 * limits.maxPairs });
          if (entries.length > 2 * limits.maxPairs) break;
        }
        for (const [k, v] of entries) {
          const p = `${path}[${JSON.stringify(k)}]`;
          checkString(k, undefined, at, p, out);
          if (field.mapKind === "scalar" && typeof v === "string") checkString(v, undefined, at, p, out);
          else if (field.mapKind === "message") walkNested(field.message, v, at, p, out, budget);
        }
        break;
      }
      case "enum":
        break;
    }
  }
}

function walkNested(desc: DescMessage, value: unknown, fields: DescField[], path: string, out: FirstPassViolation[], budget: JsonBudget): void {
  // Struct, Value and ListValue surface as plain JSON; wrappers as primitives.
  switch (desc.typeName) {
    case "google.protobuf.Struct":
    case "google.protobuf.Value":
    case "google.protobuf.ListValue":
      return walkJson(value, fields, path, out, budget, 0, path);
    case "google.protobuf.StringValue":
      if (typeof value === "string") checkString(value, undefined, fields, path, out);
      return;
  }
  if (typeof value === "object" && value !== null) walkMessage(desc, value as Record<string, unknown>, fields, `${path}.`, out, budget);
}

function walkJson(value: unknown, fields: DescField[], path: string, out: FirstPassViolation[], budget: JsonBudget, depth: number, root: string): void {
  if (typeof value === "string") return checkString(value, undefined, fields, path, out);
  if (value === null || typeof value !== "object" || budget.over) return;
  // Over the limits: reported once, and nothing more of it is read.
  const over = (what: "values" | "depth") => {
    budget.over = true;
    const v = structBudgetViolation(root, what);
    out.push({ fields, path: v.field, description: v.description, kind: "size", gross: true });
  };
  if (depth + 1 > structLimits.maxDepth) return over("depth");
  const entries = Array.isArray(value) ? value.map((v, i) => [`[${i}]`, v] as const) : Object.entries(value).map(([k, v]) => [`.${k}`, v] as const);
  if ((budget.values += entries.length) > structLimits.maxValues) return over("values");
  for (const [key, v] of entries) {
    if (!Array.isArray(value)) checkString(key.slice(1), undefined, fields, `${path}${key}`, out);
    walkJson(v, fields, `${path}${key}`, out, budget, depth + 1, root);
  }
}

function checkString(s: string, maxLen: number | undefined, fields: readonly DescField[], path: string, out: FirstPassViolation[]): void {
  if (s.includes("\0")) out.push({ fields, path, description: "must not contain NUL characters", kind: "integrity", gross: false });
  else if (!s.isWellFormed()) out.push({ fields, path, description: "must be valid Unicode (unpaired surrogate)", kind: "integrity", gross: false });
  // Lengths are in code points; a string of at most maxLen UTF-16 units cannot exceed them.
  if (maxLen !== undefined && s.length > maxLen && codePoints(s, maxLen) > maxLen) {
    out.push({ fields, path, description: `must be at most ${maxLen} characters`, kind: "size", gross: codePoints(s, 2 * maxLen) > 2 * maxLen });
  }
}

/** Code points of `s`, counting no further than one past `limit`. */
function codePoints(s: string, limit: number): number {
  let n = 0;
  for (let i = 0; i < s.length && n <= limit; i++, n++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  return n;
}

function read(field: DescField, message: Record<string, unknown>): unknown {
  const oneof = field.oneof;
  if (oneof) {
    const o = message[oneof.localName] as { case?: string; value?: unknown } | undefined;
    return o?.case === field.localName ? o.value : undefined;
  }
  return message[field.localName];
}
