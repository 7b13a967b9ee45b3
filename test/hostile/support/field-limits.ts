// The one place the fuzzer reads field rules from the protos. Today they are
// Anvil's own `anvil.api.v1.rules` options; when the rules move to
// `buf.validate`, only this file changes: the generators ask for limits, not
// for an options message.
import { type DescField, getOption, hasOption } from "@bufbuild/protobuf";
import { Format, rules as rulesOption } from "../../../gen/anvil/api/v1/annotations_pb.js";
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

const formats: Partial<Record<Format, FieldLimits["format"]>> = {
  [Format.UUID]: "uuid",
  [Format.EMAIL]: "email",
  [Format.TOKEN]: "token",
};

/** The limits the protos declare for `field` (all absent when it has no rules). */
export function fieldLimits(field: DescField): FieldLimits {
  const behaviors = hasOption(field, field_behavior) ? getOption(field, field_behavior) : [];
  const required = behaviors.includes(FieldBehavior.REQUIRED);
  const ignorable = behaviors.includes(FieldBehavior.OUTPUT_ONLY) || behaviors.includes(FieldBehavior.IDENTIFIER);
  if (!hasOption(field, rulesOption)) return { required, ignorable, definedOnly: false, unique: false };
  const r = getOption(field, rulesOption);
  // Repeated strings carry their per-item rules in `items`.
  const str = r.items ?? r;
  return {
    required,
    ignorable,
    ...(str.minLen ? { minLen: str.minLen } : {}),
    ...(str.maxLen ? { maxLen: str.maxLen } : {}),
    ...(formats[str.format] ? { format: formats[str.format] } : {}),
    ...(r.maxItems ? { maxItems: r.maxItems } : {}),
    ...(r.hasMin ? { min: r.min } : {}),
    ...(r.hasMax ? { max: r.max } : {}),
    definedOnly: r.definedOnly,
    unique: r.unique,
  };
}
