import { createHash } from "node:crypto";

/**
 * A stable hash of a use case's input, so a reused `request_id` can be told
 * apart from a genuine retry. Keys are sorted so field order does not matter.
 */
export function requestHash(input: unknown): string {
  const parts: string[] = [];
  stableJson(input, parts);
  return createHash("sha256").update(parts.join("")).digest("base64url");
}

/**
 * Appends the JSON of `value`, keys sorted, to `out` in pieces. Pieces
 * rather than a string returned per level: joining each level's children
 * copied a deep value's text once per level above it, quadratic in the
 * nesting of a `google.protobuf.Struct` config (about 50 levels of a 10 MiB
 * body: half a gigabyte copied).
 */
function stableJson(value: unknown, out: string[]): void {
  if (value instanceof Date) {
    out.push(JSON.stringify(value.toISOString()));
  } else if (Array.isArray(value)) {
    out.push("[");
    value.forEach((v, i) => {
      if (i > 0) out.push(",");
      stableJson(v, out);
    });
    out.push("]");
  } else if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    out.push("{");
    entries.forEach(([k, v], i) => {
      out.push(`${i > 0 ? "," : ""}${JSON.stringify(k)}:`);
      stableJson(v, out);
    });
    out.push("}");
  } else {
    out.push(JSON.stringify(value) ?? "null");
  }
}
