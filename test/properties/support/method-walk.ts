import { type DescMethod, getOption, hasOption, type JsonValue } from "@bufbuild/protobuf";
import { expect } from "vitest";
import { permission } from "../../../gen/anvil/api/v1/annotations_pb.js";
import { apiMethods, nameOf } from "./api-methods.js";
import { type MethodRule, methodRules } from "./method-rules.js";

export { apiMethods, nameOf };

/** The permission a method declares in its proto options (`anvil.api.v1.permission`). */
export function declaredPermission(m: DescMethod): string {
  return hasOption(m, permission) ? getOption(m, permission) : "";
}

/**
 * Reads before writes: a read in the other tenant finds nothing only while
 * that tenant has created nothing of its own yet, so aggregates (counts,
 * correlations) can be required to be empty.
 */
export const readsFirst: readonly DescMethod[] = [
  ...apiMethods.filter((m) => declaredPermission(m).endsWith(".read")),
  ...apiMethods.filter((m) => !declaredPermission(m).endsWith(".read")),
];

/** The rule for `m`; fails the test for a method nobody wrote one for. */
export function ruleFor(m: DescMethod): MethodRule {
  const rule = methodRules[m.name];
  expect(rule, `${nameOf(m)} has no rule in test/properties/support/method-rules.ts: add how to call it`).toBeDefined();
  return rule!;
}

/** Whether the method's request has a `request_id` field. */
export const hasRequestId = (m: DescMethod): boolean => m.input.fields.some((f) => f.name === "request_id");

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * What in `json` has substance: ids and non-zero numbers (counts, sizes).
 * Empty lists, zero counts and enum names are not substance.
 */
export function substance(json: JsonValue | undefined, path = ""): string[] {
  if (json === null || json === undefined || typeof json === "boolean") return [];
  if (typeof json === "number") return json === 0 ? [] : [`${path}=${json}`];
  if (typeof json === "string") return uuid.test(json) || (/^-?\d+$/.test(json) && Number(json) !== 0) ? [`${path}=${json}`] : [];
  if (Array.isArray(json)) return json.flatMap((x, i) => substance(x, `${path}[${i}]`));
  return Object.entries(json).flatMap(([k, x]) => substance(x, path ? `${path}.${k}` : k));
}

/** Every string in `value` (rows, messages), deeply. */
export function stringsIn(value: unknown): string[] {
  if (typeof value === "string") {
    // JSON columns arrive as text on one driver and parsed on the other.
    if (/^[[{]/.test(value)) {
      try {
        return [value, ...stringsIn(JSON.parse(value))];
      } catch {
        return [value];
      }
    }
    return [value];
  }
  if (Array.isArray(value)) return value.flatMap(stringsIn);
  if (value !== null && typeof value === "object") return Object.values(value).flatMap(stringsIn);
  return [];
}

/** Strings of a tenant's rows that name it alone: ids, lease tokens, and anything holding its tag. */
export function markersOf(rows: unknown, tag: string): Set<string> {
  return new Set(stringsIn(rows).filter((s) => uuid.test(s) || s.includes(tag)));
}
