import { type DescField, getOption, hasOption } from "@bufbuild/protobuf";
import {
  type FieldRules,
  field as fieldRulesOption,
  type Int32Rules,
  type Int64Rules,
  type StringRules,
  type UInt32Rules,
  type UInt64Rules,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import type { Schema } from "./json-schema.js";

/**
 * JSON Schema keywords for what a field's `buf.validate` rules enforce, so
 * the OpenAPI document tells clients the limits the gateway will hold them
 * to: string lengths, patterns and formats, item and entry counts, numeric
 * ranges. Rules JSON Schema cannot express (CEL) are left to the server.
 * 64-bit integers are JSON strings, so their ranges are not stated.
 */
export function fieldConstraints(field: DescField): Schema {
  const rules = hasOption(field, fieldRulesOption) ? getOption(field, fieldRulesOption) : undefined;
  return rules ? typeConstraints(rules) : {};
}

/** Constraints of a repeated field's items, from `repeated.items`. */
export function itemConstraints(field: DescField): Schema {
  const rules = hasOption(field, fieldRulesOption) ? getOption(field, fieldRulesOption) : undefined;
  return rules?.type.case === "repeated" && rules.type.value.items ? typeConstraints(rules.type.value.items) : {};
}

function typeConstraints(rules: FieldRules): Schema {
  const t = rules.type;
  switch (t.case) {
    case "string":
      return stringConstraints(t.value);
    case "int32":
    case "uint32":
    case "sint32":
    case "fixed32":
    case "sfixed32":
      return rangeConstraints(t.value as Int32Rules | UInt32Rules);
    case "int64":
    case "uint64":
      return rangeConstraints(t.value as Int64Rules | UInt64Rules, true);
    case "repeated": {
      const r = t.value;
      return {
        ...(r.minItems > 0n ? { minItems: Number(r.minItems) } : {}),
        ...(hasSet(r, "maxItems") ? { maxItems: Number(r.maxItems) } : {}),
        ...(r.unique ? { uniqueItems: true } : {}),
      };
    }
    case "map": {
      const r = t.value;
      return {
        ...(r.minPairs > 0n ? { minProperties: Number(r.minPairs) } : {}),
        ...(hasSet(r, "maxPairs") ? { maxProperties: Number(r.maxPairs) } : {}),
      };
    }
    default:
      return {};
  }
}

function stringConstraints(r: StringRules): Schema {
  const s: Schema = {};
  if (hasSet(r, "minLen")) s.minLength = Number(r.minLen);
  if (hasSet(r, "maxLen")) s.maxLength = Number(r.maxLen);
  if (hasSet(r, "pattern")) s.pattern = r.pattern;
  if (r.wellKnown.case === "uuid" && r.wellKnown.value) s.format = "uuid";
  if (r.wellKnown.case === "email" && r.wellKnown.value) s.format = "email";
  return s;
}

function rangeConstraints(r: Int32Rules | UInt32Rules | Int64Rules | UInt64Rules, asString = false): Schema {
  if (asString) return {};
  const s: Schema = {};
  if (r.greaterThan.case === "gte") s.minimum = Number(r.greaterThan.value);
  if (r.greaterThan.case === "gt") s.exclusiveMinimum = Number(r.greaterThan.value);
  if (r.lessThan.case === "lte") s.maximum = Number(r.lessThan.value);
  if (r.lessThan.case === "lt") s.exclusiveMaximum = Number(r.lessThan.value);
  return s;
}

// proto2 presence: buf.validate is proto2, so an unset limit is absent, not 0.
function hasSet(message: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(message, key);
}
