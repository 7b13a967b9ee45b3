import type { DescField, DescMessage } from "@bufbuild/protobuf";

/**
 * Resolves a dotted field path (`user.id`, or `user.displayName` in JSON
 * names) to its fields, from the outermost in. Every step but the last must
 * be a singular message field; returns undefined when a name is unknown, so
 * callers report it as the client's or the annotation's mistake.
 */
export function resolveFieldPath(message: DescMessage, path: readonly string[]): DescField[] | undefined {
  const fields: DescField[] = [];
  let current: DescMessage | undefined = message;
  for (const name of path) {
    if (!current) return undefined;
    const field: DescField | undefined = current.fields.find((f) => f.name === name || f.jsonName === name);
    if (!field) return undefined;
    fields.push(field);
    current = field.fieldKind === "message" ? field.message : undefined;
  }
  return fields;
}

/** The JSON key path of resolved fields, e.g. `["user", "displayName"]`. */
export function jsonPath(fields: readonly DescField[]): string[] {
  return fields.map((f) => f.jsonName);
}

/** The proto name path of resolved fields, e.g. `user.display_name`. */
export function protoPath(fields: readonly DescField[]): string {
  return fields.map((f) => f.name).join(".");
}
