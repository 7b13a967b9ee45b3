import type { DescField, DescMessage } from "@bufbuild/protobuf";

/**
 * Two rules every string of a request obeys, whatever its field: no NUL
 * character and no unpaired UTF-16 surrogate. PostgreSQL refuses the first
 * and silently mangles the second, so both are refused at the edge. They are
 * a property of the storage, not of any one field, so they live here rather
 * than as a `buf.validate` rule repeated on every string field.
 */
export interface IntegrityViolation {
  /** Fields from the request down to the string (for field-behavior scoping). */
  readonly fields: readonly DescField[];
  /** The path as clients see it, e.g. `user.roles[2]`. */
  readonly path: string;
  readonly description: string;
}

export function checkStrings(desc: DescMessage, message: object): IntegrityViolation[] {
  const out: IntegrityViolation[] = [];
  walkMessage(desc, message as Record<string, unknown>, [], "", out);
  return out;
}

function walkMessage(desc: DescMessage, message: Record<string, unknown>, fields: DescField[], prefix: string, out: IntegrityViolation[]): void {
  for (const field of desc.fields) {
    const value = read(field, message);
    if (value === undefined || value === null) continue;
    const path = prefix + field.name;
    const at = [...fields, field];
    switch (field.fieldKind) {
      case "scalar":
        if (typeof value === "string") check(value, at, path, out);
        break;
      case "message":
        walkNested(field.message, value, at, path, out);
        break;
      case "list":
        (value as unknown[]).forEach((item, i) => {
          if (field.listKind === "scalar" && typeof item === "string") check(item, at, `${path}[${i}]`, out);
          else if (field.listKind === "message") walkNested(field.message, item, at, `${path}[${i}]`, out);
        });
        break;
      case "map":
        for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
          const p = `${path}[${JSON.stringify(k)}]`;
          check(k, at, p, out);
          if (field.mapKind === "scalar" && typeof v === "string") check(v, at, p, out);
          else if (field.mapKind === "message") walkNested(field.message, v, at, p, out);
        }
        break;
      case "enum":
        break;
    }
  }
}

function walkNested(desc: DescMessage, value: unknown, fields: DescField[], path: string, out: IntegrityViolation[]): void {
  // Struct, Value and ListValue surface as plain JSON; wrappers as primitives.
  switch (desc.typeName) {
    case "google.protobuf.Struct":
    case "google.protobuf.Value":
    case "google.protobuf.ListValue":
      return walkJson(value, fields, path, out);
    case "google.protobuf.StringValue":
      if (typeof value === "string") check(value, fields, path, out);
      return;
  }
  walkMessage(desc, value as Record<string, unknown>, fields, `${path}.`, out);
}

function walkJson(value: unknown, fields: DescField[], path: string, out: IntegrityViolation[]): void {
  if (typeof value === "string") check(value, fields, path, out);
  else if (Array.isArray(value)) value.forEach((v, i) => walkJson(v, fields, `${path}[${i}]`, out));
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      check(k, fields, `${path}.${k}`, out);
      walkJson(v, fields, `${path}.${k}`, out);
    }
  }
}

function check(s: string, fields: readonly DescField[], path: string, out: IntegrityViolation[]): void {
  if (s.includes("\0")) out.push({ fields, path, description: "must not contain NUL characters" });
  else if (!s.isWellFormed()) out.push({ fields, path, description: "must be valid Unicode (unpaired surrogate)" });
}

function read(field: DescField, message: Record<string, unknown>): unknown {
  const oneof = field.oneof;
  if (oneof) {
    const o = message[oneof.localName] as { case?: string; value?: unknown } | undefined;
    return o?.case === field.localName ? o.value : undefined;
  }
  return message[field.localName];
}
