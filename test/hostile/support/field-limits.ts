// The one place the fuzzer reads field rules from the protos: the
// `buf.validate` rules (protovalidate's vocabulary) and google.api's field
// behaviour. The generators ask for limits, not for an options message.
import { type DescField, getOption, hasOption } from "@bufbuild/protobuf";
import { field as fieldRulesOption, type StringRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { FieldBehavior, field_behavior } from "../../../gen/google/api/field_behavior_pb.js";

/** What a field's declared rules allow, in the terms the generators need. */
export interface FieldLimits {
  readonly required: boolean;
  /** The server may ignore what a client sends here (output-only, or an identifier it assigns on create). */
  readonly ignorable: boolean;
  /** Length bounds of a string (or of each item of a repeated string), in code points. */
  readonly minLen?: number;
  readonly maxLen?: number;
  /** Shape a string must have. */
  readonly format?: "uuid" | "email" | "token";
  /** Most items of a repeated or map field. */
  readonly maxItems?: number;
  /** Numeric bounds, inclusive. */
  readonly min?: bigint;
  readonly max?: bigint;
  /** Enum values outside the declared ones are refused. */
  readonly definedOnly: boolean;
  /** Repeated items must be distinct. */
  readonly unique: boolean;
}

// The lowercase-token pattern the protos use (`[a-z][a-z0-9_-]*`).
const tokenPattern = "^[a-z][a-z0-9_-]*$";

// proto2 presence: buf.validate is proto2, so an unset limit is absent, not 0.
const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

function stringLimits(s: StringRules): Pick<FieldLimits, "minLen" | "maxLen" | "format"> {
  const format =
    s.wellKnown.case === "uuid" && s.wellKnown.value ? "uuid"
    : s.wellKnown.case === "email" && s.wellKnown.value ? "email"
    : s.pattern === tokenPattern ? "token"
    : undefined;
  return {
    ...(has(s, "minLen") ? { minLen: Number(s.minLen) } : {}),
    ...(has(s, "maxLen") ? { maxLen: Number(s.maxLen) } : {}),
    ...(format ? { format } : {}),
  };
}

/** The limits the protos declare for `field` (all absent when it has no rules). */
export function fieldLimits(field: DescField): FieldLimits {
  const behaviors = hasOption(field, field_behavior) ? getOption(field, field_behavior) : [];
  const required = behaviors.includes(FieldBehavior.REQUIRED);
  const ignorable = behaviors.includes(FieldBehavior.OUTPUT_ONLY) || behaviors.includes(FieldBehavior.IDENTIFIER);
  const none: FieldLimits = { required, ignorable, definedOnly: false, unique: false };
  if (!hasOption(field, fieldRulesOption)) return none;
  const t = getOption(field, fieldRulesOption).type;
  switch (t.case) {
    case "string":
      return { ...none, ...stringLimits(t.value) };
    case "int32":
    case "int64": {
      const r = t.value;
      return {
        ...none,
        ...(r.greaterThan.case === "gte" ? { min: BigInt(r.greaterThan.value) } : {}),
        ...(r.lessThan.case === "lte" ? { max: BigInt(r.lessThan.value) } : {}),
      };
    }
    case "enum":
      return { ...none, definedOnly: t.value.definedOnly };
    case "repeated": {
      const r = t.value;
      const items = r.items?.type;
      return {
        ...none,
        ...(items?.case === "string" ? stringLimits(items.value) : {}),
        ...(has(r, "maxItems") ? { maxItems: Number(r.maxItems) } : {}),
        unique: r.unique,
      };
    }
    case "map":
      return { ...none, ...(has(t.value, "maxPairs") ? { maxItems: Number(t.value.maxPairs) } : {}) };
    default:
      return none;
  }
}
