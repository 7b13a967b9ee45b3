import { type DescEnum, type DescField, type DescMessage, getOption, hasOption, ScalarType } from "@bufbuild/protobuf";
import { FieldBehavior, field_behavior } from "../../../gen/google/api/field_behavior_pb.js";
import { protoComment } from "./proto-comments.js";
import { fieldConstraints, itemConstraints } from "./validation-constraints.js";

/** A JSON Schema (2020-12, as OpenAPI 3.1 uses it). */
export type Schema = { [key: string]: unknown };

/**
 * JSON Schemas of proto messages and enums following the canonical proto3
 * JSON mapping — the JSON REST and Connect JSON clients actually exchange:
 * lowerCamelCase keys, int64 as strings, enums by name, well-known types in
 * their special forms (Timestamp as an RFC 3339 string, FieldMask as a
 * comma-separated string, Struct as an object). Referenced types are
 * collected into `schemas` under their full proto name.
 */
export class SchemaCollector {
  readonly schemas: Record<string, Schema> = {};

  /** A `$ref` to `message` (or its inline form for well-known types), collecting it. */
  message(message: DescMessage): Schema {
    const wkt = wellKnownSchema(message);
    if (wkt) return wkt;
    if (!(message.typeName in this.schemas)) {
      this.schemas[message.typeName] = {}; // placeholder: messages may refer to themselves
      this.schemas[message.typeName] = this.#messageSchema(message);
    }
    return { $ref: `#/components/schemas/${message.typeName}` };
  }

  /** The schema of one field's value, with its comment as description. */
  field(field: DescField): Schema {
    const schema: Schema = { ...this.#valueSchema(field) };
    const description = protoComment(field);
    if (description) schema.description = description;
    if (behaviors(field).includes(FieldBehavior.OUTPUT_ONLY)) schema.readOnly = true;
    return schema;
  }

  /** The schema of a field's type alone, without description (for parameters, `items`). */
  scalarOrRef(field: DescField): Schema {
    return this.#valueSchema(field);
  }

  // The value's type, with the limits its buf.validate rules set.
  #valueSchema(field: DescField): Schema {
    switch (field.fieldKind) {
      case "scalar":
        return { ...scalarSchema(field.scalar), ...fieldConstraints(field) };
      case "enum":
        return this.#enum(field.enum);
      case "message":
        return this.message(field.message);
      case "list":
        return {
          type: "array",
          items:
            field.listKind === "scalar"
              ? { ...scalarSchema(field.scalar), ...itemConstraints(field) }
              : field.listKind === "enum"
                ? this.#enum(field.enum)
                : this.message(field.message),
          ...fieldConstraints(field),
        };
      case "map":
        return {
          type: "object",
          additionalProperties:
            field.mapKind === "scalar" ? scalarSchema(field.scalar) : field.mapKind === "enum" ? this.#enum(field.enum) : this.message(field.message),
          ...fieldConstraints(field),
        };
    }
  }

  #enum(desc: DescEnum): Schema {
    if (desc.typeName === "google.protobuf.NullValue") return { type: "null" };
    if (!(desc.typeName in this.schemas)) {
      const values = desc.values.map((v) => `- \`${v.name}\`${protoComment(v) ? `: ${protoComment(v)}` : ""}`).join("\n");
      const comment = protoComment(desc);
      this.schemas[desc.typeName] = {
        type: "string",
        enum: desc.values.map((v) => v.name),
        description: [comment, values].filter(Boolean).join("\n\n"),
      };
    }
    return { $ref: `#/components/schemas/${desc.typeName}` };
  }

  #messageSchema(message: DescMessage): Schema {
    const properties: Record<string, Schema> = {};
    const required: string[] = [];
    for (const field of message.fields) {
      properties[field.jsonName] = this.field(field);
      if (behaviors(field).includes(FieldBehavior.REQUIRED)) required.push(field.jsonName);
    }
    const schema: Schema = { type: "object", properties, additionalProperties: false };
    if (required.length > 0) schema.required = required;
    const description = protoComment(message);
    if (description) schema.description = description;
    return schema;
  }
}

function behaviors(field: DescField): FieldBehavior[] {
  return hasOption(field, field_behavior) ? getOption(field, field_behavior) : [];
}

/** proto3 JSON forms of the scalar types. 64-bit integers are strings, as JavaScript numbers would lose precision. */
export function scalarSchema(type: ScalarType): Schema {
  switch (type) {
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", minimum: 0, maximum: 4294967295 };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64", pattern: "^-?[0-9]+$" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", pattern: "^[0-9]+$" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
  }
}

function wellKnownSchema(message: DescMessage): Schema | undefined {
  switch (message.typeName) {
    case "google.protobuf.Timestamp":
      return { type: "string", format: "date-time" };
    case "google.protobuf.Duration":
      return { type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$", examples: ["1.5s"] };
    case "google.protobuf.FieldMask":
      return { type: "string", description: "Comma-separated field paths in lowerCamelCase, e.g. `displayName,state`." };
    case "google.protobuf.Struct":
      return { type: "object", additionalProperties: true };
    case "google.protobuf.Value":
      return {};
    case "google.protobuf.ListValue":
      return { type: "array", items: {} };
    case "google.protobuf.Empty":
      return { type: "object", additionalProperties: false };
    case "google.protobuf.Any":
      return { type: "object", properties: { "@type": { type: "string" } }, required: ["@type"], additionalProperties: true };
  }
  if (message.typeName.startsWith("google.protobuf.") && message.typeName.endsWith("Value")) {
    const inner = message.fields[0];
    if (inner?.fieldKind === "scalar") {
      const schema = scalarSchema(inner.scalar);
      return { ...schema, type: [schema.type, "null"] };
    }
  }
  return undefined;
}
