import { type DescField, type DescMessage, type JsonValue, ScalarType } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Well-known messages whose proto3 JSON form is a single string (or, for
 * wrappers, a scalar), so a path variable or query parameter can carry them:
 * `update_mask=display_name,state`, `since=2024-01-01T00:00:00Z`.
 */
const stringLikeMessages = new Set([
  "google.protobuf.Timestamp",
  "google.protobuf.Duration",
  "google.protobuf.FieldMask",
]);

/** Whether a field of this message type can be written as one query value. */
export function isQueryableMessage(message: DescMessage): boolean {
  return stringLikeMessages.has(message.typeName) || isWrapper(message);
}

function isWrapper(message: DescMessage): boolean {
  // Stryker disable next-line StringLiteral,ConditionalExpression: equivalent over google.protobuf's messages: every one whose single field is named `value` is a wrapper ending in "Value"
  return message.typeName.startsWith("google.protobuf.") && message.typeName.endsWith("Value") && message.fields.length === 1 && message.fields[0]!.name === "value";
}

/**
 * Turns the text of a path variable or query parameter into the proto3 JSON
 * value of `field`, so the request reaches the RPC handler exactly as a
 * Connect JSON client would have sent it. Values that do not fit are passed
 * on as strings for the JSON parser to reject with its precise message.
 */
export function queryValueToJson(field: DescField, raw: string): JsonValue {
  switch (field.fieldKind) {
    case "scalar":
      return scalarToJson(field.scalar, raw);
    case "enum":
      return enumToJson(raw);
    case "list":
      if (field.listKind === "scalar") return scalarToJson(field.scalar, raw);
      if (field.listKind === "enum") return enumToJson(raw);
      return messageToJson(field, field.message, raw);
    case "message":
      return messageToJson(field, field.message, raw);
    case "map":
      throw invalid(`map field ${field.name} cannot be set from the URL`);
  }
}

function scalarToJson(type: ScalarType, raw: string): JsonValue {
  // Numbers stay strings: proto3 JSON accepts "42" for every numeric type,
  // and int64 must be a string anyway to keep its precision.
  if (type === ScalarType.BOOL) return raw === "true" ? true : raw === "false" ? false : raw;
  return raw;
}

function enumToJson(raw: string): JsonValue {
  // Enums go by name (`state=STATE_ACTIVE`) or by number (`state=1`).
  return /^-?\d+$/.test(raw) ? Number(raw) : raw;
}

function messageToJson(field: DescField, message: DescMessage, raw: string): JsonValue {
  if (message.typeName === "google.protobuf.FieldMask") {
    // URLs conventionally name proto fields (`display_name`); the JSON form
    // of a FieldMask is lowerCamelCase, so convert each path's segments.
    return raw
      .split(",")
      .map((p) => p.trim().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()))
      .join(",");
  }
  if (stringLikeMessages.has(message.typeName)) return raw;
  if (isWrapper(message)) {
    const inner = message.fields[0]!;
    // Stryker disable next-line ConditionalExpression: equivalent: every wrapper's value is a scalar
    return inner.fieldKind === "scalar" ? scalarToJson(inner.scalar, raw) : raw;
  }
  throw invalid(`field ${field.name} is a message; set its fields instead (for example ${field.name}.<field>=…)`);
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
