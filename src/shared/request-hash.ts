import { createHash } from "node:crypto";

/**
 * A stable hash of a use case's input, so a reused `request_id` can be told
 * apart from a genuine retry. Keys are sorted so field order does not matter.
 */
export function requestHash(input: unknown): string {
  return createHash("sha256").update(stableJson(input)).digest("base64url");
}

function stableJson(value: unknown): string {
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}
