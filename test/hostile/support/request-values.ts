// fast-check generators of request messages, driven by the service
// descriptors: every field gets valid, boundary and invalid values, read
// from its type and its declared limits (field-limits.ts). Values are built
// in proto3 JSON form, which can say things the binary form cannot (a
// string where a number belongs, a number past int64); wire.ts encodes them
// per protocol. Every generated value carries the input classes it holds
// (`tags`), which failures are reported and allow-listed by.
import { type DescEnum, type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import fc from "fast-check";
import { fieldLimits } from "./field-limits.js";

/** A generated JSON value and the input classes it holds. */
export interface Fuzzed {
  readonly json: unknown;
  readonly tags: readonly string[];
}

/** In a generated string, stands for bytes that are not UTF-8 (wire.ts swaps them in after encoding). */
export const invalidUtf8Marker = "\uE000";
/** In a generated string, stands for the id of a resource the gateway returned earlier (wire.ts resolves it). */
export const knownIdMarker = "\uE001known-id\uE001";

const v = (json: unknown, ...tags: string[]): Fuzzed => ({ json, tags });
const cap = (n: number) => Math.min(n, 70_000);

/** Options of messageArbitrary. */
export interface ValueOptions {
  /** How deep nested messages are filled (deeper ones are left out). */
  readonly maxDepth: number;
}

/**
 * Generates request messages of `desc`: a third valid throughout (so that
 * requests reach the services and the database, not only the validator), a
 * third valid but for one field, a third with each set field valid, at a
 * limit, or invalid.
 */
export function messageArbitrary(desc: DescMessage, options: ValueOptions = { maxDepth: 3 }): fc.Arbitrary<Fuzzed> {
  const valid = message(desc, options.maxDepth, true);
  if (desc.fields.length === 0) return valid;
  // Valid but for one field: the request reaches as far as that one value lets it.
  const oneBad = fc.tuple(
    valid,
    fc.integer({ min: 0, max: desc.fields.length - 1 }).chain((i) => field(desc.fields[i]!, options.maxDepth, false)
        // Only values of some named class: a plain valid one is what `valid` already sends.
        .filter((x) => x.tags.length > 0)
        .map((x) => [desc.fields[i]!, x] as const)),
  ).map(([base, [f, bad]]) => {
    const json = { ...(base.json as Record<string, unknown>) };
    for (const other of f.oneof?.fields ?? []) delete json[other.jsonName];
    json[f.jsonName] = bad.json;
    const name = fieldLimits(f).ignorable ? `${f.name}~` : f.name;
    return { json, tags: bad.tags.map((t) => `${name}:${t}`) };
  });
  return fc.oneof(valid, oneBad, message(desc, options.maxDepth, false));
}

/** The valid generator alone when only valid values are wanted, else every kind by weight. */
function pick(validOnly: boolean, valid: fc.Arbitrary<Fuzzed>, ...others: fc.WeightedArbitrary<Fuzzed>[]): fc.Arbitrary<Fuzzed> {
  return validOnly ? valid : fc.oneof(...others);
}

const messageCache = new Map<string, fc.Arbitrary<Fuzzed>>();

function message(desc: DescMessage, depth: number, validOnly: boolean): fc.Arbitrary<Fuzzed> {
  const key = `${desc.typeName}@${depth}${validOnly ? ":valid" : ""}`;
  const cached = messageCache.get(key);
  if (cached) return cached;
  const wk = wellKnown(desc, validOnly);
  if (wk) return wk;
  if (depth <= 0) return fc.constant(v({}));
  // Valid messages set every required field and one member of each oneof.
  const firstOfOneof = (f: DescField) => !f.oneof || f.oneof.fields[0] === f;
  const fields = desc.fields.map((f) =>
    validOnly && fieldLimits(f).required ? field(f, depth, true) : validOnly && !firstOfOneof(f) ? fc.constant(null) : fc.option(field(f, depth, validOnly), { freq: 3 }),
  );
  const extras = validOnly ? fc.constant(null) : fc.option(
    fc.oneof(
      fc.constant(v({ unknownField: 1 }, "unknown-field")),
      fc.constant(v({ [desc.fields[0]?.jsonName ?? "x"]: { nested: [] } }, "wrong-type")),
    ),
    { freq: 8 },
  );
  const arb = fc.tuple(fc.tuple(...fields), extras).map(([values, extra]) => {
    const json: Record<string, unknown> = {};
    const tags: string[] = [];
    const oneofsSet = new Set<string>();
    desc.fields.forEach((f, i) => {
      const value = values[i];
      if (!value) return;
      if (f.oneof) {
        if (oneofsSet.has(f.oneof.name)) tags.push("oneof:multiple");
        oneofsSet.add(f.oneof.name);
      }
      json[f.jsonName] = value.json;
      // `~` marks a field the server may ignore: bad values under it need not be refused.
      const name = fieldLimits(f).ignorable ? `${f.name}~` : f.name;
      for (const t of value.tags) tags.push(`${name}:${t}`);
    });
    if (extra) {
      Object.assign(json, extra.json);
      // A field the extra overwrote no longer holds what its tags say.
      const overwritten = desc.fields.filter((f) => f.jsonName in (extra.json as object)).map((f) => f.name);
      return { json, tags: [...tags.filter((t) => !overwritten.some((n) => t.startsWith(`${n}:`) || t.startsWith(`${n}~:`))), ...extra.tags] };
    }
    return { json, tags };
  });
  messageCache.set(key, arb);
  return arb;
}

function field(f: DescField, depth: number, validOnly: boolean): fc.Arbitrary<Fuzzed> {
  const limits = fieldLimits(f);
  switch (f.fieldKind) {
    case "scalar":
      return scalar(f.scalar, f, validOnly);
    case "enum":
      return enumValue(f.enum, validOnly);
    case "message":
      return message(f.message, depth - 1, validOnly);
    case "list": {
      const item: fc.Arbitrary<Fuzzed> =
        f.listKind === "scalar" ? scalar(f.scalar, f, validOnly) : f.listKind === "enum" ? enumValue(f.enum, validOnly) : message(f.message, depth - 1, validOnly);
      return list(item, limits.maxItems, validOnly);
    }
    case "map": {
      const value: fc.Arbitrary<Fuzzed> =
        f.mapKind === "scalar" ? scalar(f.scalar, f, validOnly) : f.mapKind === "enum" ? enumValue(f.enum, validOnly) : message(f.message, depth - 1, validOnly);
      const entry = fc.tuple(stringValue(validOnly, undefined, 100), value).map(([k, x]) => ({ json: [String(k.json), x.json], tags: [...k.tags, ...x.tags] }));
      return list(entry, limits.maxItems, validOnly).map((l) =>
        Array.isArray(l.json) ? { json: Object.fromEntries(l.json as [string, unknown][]), tags: l.tags } : l,
      );
    }
  }
}

function list(item: fc.Arbitrary<Fuzzed>, maxItems: number | undefined, validOnly: boolean): fc.Arbitrary<Fuzzed> {
  const collect = (items: Fuzzed[], ...tags: string[]): Fuzzed => ({ json: items.map((i) => i.json), tags: [...new Set([...tags, ...items.flatMap((i) => i.tags)])] });
  // Many copies of one item, kept under ~4 MiB so that the client does not build what the server would refuse anyway.
  const many = (n: number, tag: string) =>
    item.map((one) => {
      const size = (JSON.stringify(one.json) ?? "").length + 1;
      return { json: Array.from({ length: Math.max(1, Math.min(n, Math.floor(4_000_000 / size))) }, () => one.json), tags: [tag, ...one.tags] };
    });
  const few = fc.array(item, { maxLength: Math.min(4, maxItems ?? 4) }).map((items) => collect(items));
  return pick(
    validOnly,
    few,
    { weight: 6, arbitrary: few },
    ...(maxItems ? [{ weight: 1, arbitrary: many(maxItems, "list:at-max") }, { weight: 1, arbitrary: many(maxItems + 1, "list:over-max") }] : []),
    { weight: 1, arbitrary: many(5_000, "list:many") },
    { weight: 1, arbitrary: fc.constant(v("not a list", "wrong-type")) },
  );
}

function enumValue(e: DescEnum, validOnly: boolean): fc.Arbitrary<Fuzzed> {
  const named = e.values.filter((x) => x.number !== 0);
  const valid = fc.constantFrom(...(named.length ? named : e.values).map((x) => v(x.name)));
  return pick(
    validOnly,
    valid,
    { weight: 6, arbitrary: fc.constantFrom(...e.values.map((x) => v(x.name))) },
    { weight: 2, arbitrary: fc.constantFrom(...e.values.map((x) => v(x.number))) },
    { weight: 1, arbitrary: fc.constantFrom(v(999, "enum:unknown"), v(-1, "enum:unknown"), v(2 ** 31, "enum:out-of-range")) },
    { weight: 1, arbitrary: fc.constantFrom(v("NOT_A_VALUE", "enum:unknown-name"), v(e.values[0]!.name.toLowerCase(), "enum:unknown-name")) },
  );
}

function scalar(type: ScalarType, f: DescField, validOnly: boolean): fc.Arbitrary<Fuzzed> {
  const limits = fieldLimits(f);
  switch (type) {
    case ScalarType.STRING:
      return stringValue(validOnly, limits.format, limits.maxLen, limits.minLen, isIdField(f));
    case ScalarType.BOOL:
      return pick(validOnly, fc.boolean().map((b) => v(b)), { weight: 6, arbitrary: fc.boolean().map((b) => v(b)) }, { weight: 1, arbitrary: fc.constantFrom(v("yes", "wrong-type"), v(1, "wrong-type")) });
    case ScalarType.BYTES:
      return pick(
        validOnly,
        fc.uint8Array({ maxLength: 16 }).map((b) => v(Buffer.from(b).toString("base64"))),
        { weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => v(Buffer.from(b).toString("base64"))) },
        { weight: 1, arbitrary: fc.constantFrom(v("!!!not base64", "bytes:bad-base64"), v("A".repeat(65_536), "bytes:large")) },
      );
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return pick(
        validOnly,
        fc.double({ min: 0, max: 1, noNaN: true }).map((d) => v(d)),
        { weight: 4, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => v(d)) },
        { weight: 1, arbitrary: fc.constantFrom(v("NaN"), v("Infinity"), v("-Infinity"), v(1e308 * 10, "number:huge"), v("1e400", "number:huge")) },
      );
    default:
      return integer(validOnly, type, limits.min, limits.max);
  }
}

const intRanges: Partial<Record<ScalarType, [bigint, bigint]>> = {
  [ScalarType.INT32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.SINT32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.SFIXED32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.UINT32]: [0n, 2n ** 32n - 1n],
  [ScalarType.FIXED32]: [0n, 2n ** 32n - 1n],
  [ScalarType.INT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.SINT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.SFIXED64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.UINT64]: [0n, 2n ** 64n - 1n],
  [ScalarType.FIXED64]: [0n, 2n ** 64n - 1n],
};

function integer(validOnly: boolean, type: ScalarType, min: bigint | undefined, max: bigint | undefined): fc.Arbitrary<Fuzzed> {
  const [lo, hi] = intRanges[type] ?? [-(2n ** 31n), 2n ** 31n - 1n];
  const is64 = hi > 2n ** 32n;
  // proto3 JSON writes 64-bit integers as strings; both forms are accepted.
  const out = (n: bigint, ...tags: string[]) => v(is64 ? n.toString() : Number(n), ...tags);
  const boundaries: Fuzzed[] = [out(0n), out(1n), out(-1n, ...(lo === 0n ? ["number:negative"] : [])), out(lo, "number:type-min"), out(hi, "number:type-max")];
  if (min !== undefined) boundaries.push(out(min), out(min - 1n, "number:below-min"));
  if (max !== undefined) boundaries.push(out(max), out(max + 1n, "number:over-max"));
  const valid = fc.bigInt({ min: min ?? (lo < 0n ? 0n : lo), max: max ?? 1000n }).map((n) => out(n));
  return pick(
    validOnly,
    valid,
    { weight: 4, arbitrary: fc.bigInt({ min: min ?? (lo < -1000n ? -1000n : lo), max: max ?? 1000n }).map((n) => out(n)) },
    { weight: 3, arbitrary: fc.constantFrom(...boundaries) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        v((hi + 1n).toString(), "number:out-of-range"),
        v((lo - 1n).toString(), "number:out-of-range"),
        v("99999999999999999999999999", "number:out-of-range"),
        v(1.5, "number:fraction"),
        v(1e300, "number:out-of-range"),
        v("12abc", "wrong-type"),
        v("", "wrong-type"),
        v(true, "wrong-type"),
      ),
    },
  );
}

function isIdField(f: DescField): boolean {
  return f.name === "id" || f.name.endsWith("_id");
}

/** Strings: valid ones of the declared format, lengths at and past the limit, and text PostgreSQL or a parser may choke on. */
function stringValue(validOnly: boolean, format: "uuid" | "email" | "token" | undefined, maxLen?: number, minLen?: number, id = false): fc.Arbitrary<Fuzzed> {
  const valid: fc.Arbitrary<Fuzzed> =
    format === "uuid"
      ? fc.oneof(fc.uuid().map((u) => v(u)), fc.constant(v(knownIdMarker, "id:known")))
      : format === "email"
        ? fc.emailAddress().map((e) => v(e))
        : format === "token"
          ? fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}$/).map((s) => v(s))
          : fc.string({ minLength: minLen ?? (validOnly ? 1 : 0), maxLength: Math.min(maxLen ?? 40, 40) }).map((s) => v(s));
  if (validOnly) return valid;
  const atLimit = maxLen
    ? [
        fc.constant(v("a".repeat(cap(maxLen)), "string:at-max")),
        fc.constant(v("é".repeat(cap(maxLen)), "string:at-max")), // 2 bytes a character: bytes past the limit, characters not
        fc.constant(v("😀".repeat(cap(maxLen)), "string:at-max")), // 2 UTF-16 units a character
        fc.constant(v("a".repeat(cap(maxLen + 1)), "string:over-max")),
        fc.constant(v("a/".repeat(cap(Math.floor(maxLen / 2))), "string:path-like")),
        fc.constant(v("a.".repeat(cap(Math.floor(maxLen / 2))), "string:dotted")),
        fc.constant(v("at a (a/a/a.js:1:1)\n".repeat(cap(Math.floor(maxLen / 20))), "string:frames")),
      ]
    : [fc.constant(v("x".repeat(70_000), "string:huge"))];
  const hostile = [
    fc.constant(v("a\u0000b", "string:nul")),
    fc.constant(v("a\ud800b", "string:lone-surrogate")),
    fc.constant(v(`a${invalidUtf8Marker}b`, "string:invalid-utf8")),
    fc.constant(v("' OR 1=1 --", "string:sql")),
    fc.constant(v("%00%ff../..\\", "string:escapes")),
    fc.constant(v("\u202e\u0301\ufeff", "string:unicode")),
    ...(id ? [fc.constantFrom(v("00000000-0000-0000-0000-000000000000", "id:nil"), v("not-a-uuid", "id:bad"), v("9f1c3e0a-0000-0000-0000-00000000000g", "id:bad"), v("9F1C3E0A-1234-4321-8888-ABCDEFABCDEF", "id:upper"))] : []),
    fc.constant(v(12, "wrong-type")),
    fc.constant(v(null, "null")),
  ];
  return fc.oneof({ weight: 8, arbitrary: valid }, { weight: 2, arbitrary: fc.oneof(...atLimit) }, { weight: 3, arbitrary: fc.oneof(...hostile) });
}

/** Timestamps, durations, masks and JSON values: the well-known types, with their odd corners. */
function wellKnown(desc: DescMessage, validOnly: boolean): fc.Arbitrary<Fuzzed> | undefined {
  switch (desc.typeName) {
    case "google.protobuf.Timestamp":
      return pick(
        validOnly,
        fc.date({ min: new Date("2000-01-01"), max: new Date("2100-01-01"), noInvalidDate: true }).map((d) => v(d.toISOString())),
        { weight: 4, arbitrary: fc.date({ min: new Date("2000-01-01"), max: new Date("2100-01-01"), noInvalidDate: true }).map((d) => v(d.toISOString())) },
        {
          weight: 2,
          arbitrary: fc.constantFrom(
            v("0001-01-01T00:00:00Z", "timestamp:edge"),
            v("9999-12-31T23:59:59.999999999Z", "timestamp:edge"),
            v("1970-01-01T00:00:00Z", "timestamp:edge"),
            v("10000-01-01T00:00:00Z", "timestamp:bad"),
            v("2024-13-45T25:61:61Z", "timestamp:bad"),
            v("2024-01-01T00:00:00+14:00", "timestamp:offset"),
            v("yesterday", "timestamp:bad"),
            v(1e20, "timestamp:bad"),
            v({ seconds: "-99999999999", nanos: -5 }, "timestamp:bad"),
          ),
        },
      );
    case "google.protobuf.Duration":
      if (validOnly) return fc.constantFrom(v("1s"), v("3600s"));
      return fc.constantFrom(v("1s"), v("0.000000001s"), v("-1s", "duration:negative"), v("315576000000s", "duration:edge"), v("315576000001s", "duration:bad"), v("1h", "duration:bad"));
    case "google.protobuf.FieldMask":
      if (validOnly) return fc.constant(v("*"));
      return fc.constantFrom(v("title"), v("title,severity"), v("*", "mask:star"), v("no_such_field", "mask:unknown"), v("a.b.c.d", "mask:unknown"), v("", "mask:empty"), v(",,,", "mask:bad"), v("x,".repeat(5_000), "mask:many"));
    case "google.protobuf.Struct":
      if (validOnly) return fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }).map((x) => v(x));
      return jsonValue().map((x) => ({ json: { value: x.json }, tags: x.tags }));
    case "google.protobuf.Value":
      return jsonValue();
    case "google.protobuf.ListValue":
      return jsonValue().map((x) => ({ json: [x.json], tags: x.tags }));
    default:
      return undefined;
  }
}

function jsonValue(): fc.Arbitrary<Fuzzed> {
  const nest = (depth: number) => {
    let x: unknown = 1;
    for (let i = 0; i < depth; i++) x = i % 2 ? [x] : { a: x };
    return x;
  };
  return fc.oneof(
    { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((x) => v(x)) },
    { weight: 1, arbitrary: fc.constantFrom(32, 100, 1_000).map((d) => v(nest(d), `json:deep-${d}`)) },
    { weight: 1, arbitrary: fc.constant(v(Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i])), "json:many-keys")) },
    { weight: 1, arbitrary: fc.constant(v({ ["\u0000k"]: "a\ud800" }, "string:nul")) },
  );
}
