// The request budget called straight, without a gateway: the limits on
// free-form JSON (struct-budget.ts) on the parsed JSON and on the binary of a
// request, before either is decoded, and the first pass over a decoded
// request (first-pass.ts): string integrity, the size limits of the
// `buf.validate` rules, and the JSON limits again. The messages are those of
// a made-up proto (test/support/budget-probe.ts) with one field of each kind.
// Every expected value is written out here, not computed by the code under
// test.
import { type DescMessage, fromJson, type JsonValue, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { Finding_Status as Status, ListFindingsRequestSchema } from "../gen/anvil/findings/v1/findings_pb.js";
import { firstPass, maxItemsOf } from "../src/rpc/validation/first-pass.js";
import { overBudgetError, reachesJson, structBudgetOfBinary, structBudgetOfJson, structBudgetViolation, structLimits } from "../src/rpc/validation/struct-budget.js";
import { InvalidArgumentError } from "../src/shared/errors.js";
import { budgetType } from "./support/budget-probe.js";

const probe = budgetType("Probe");
const tooMany = { description: "free-form JSON must hold at most 1000 values per request" };
const tooDeep = { description: "free-form JSON must nest at most 32 levels" };

/** An object of `n` members, each a number. */
const members = (n: number): Record<string, number> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
/** `n` objects nested in one another, the innermost holding a number: {"a":{"a":1}} is 2. */
const objects = (n: number): JsonValue => (n === 1 ? { a: 1 } : { a: objects(n - 1) });
/** `n` lists nested in one another, the innermost holding a number: [[1]] is 2. */
const lists = (n: number): JsonValue => (n === 1 ? [1] : [lists(n - 1)]);

/** The request as binary, built by protobuf-es from its JSON. */
const binary = (json: object, desc: DescMessage = probe) => toBinary(desc, fromJson(desc, json as JsonValue));
/** Both checks before decoding: on the JSON and on the binary of the same request. */
const beforeDecoding = (json: object) => ({ json: structBudgetOfJson(probe, json), binary: structBudgetOfBinary(probe, binary(json)) });
/** The first pass's findings, without the field descriptors. */
const findings = (json: object, desc: DescMessage = probe) => findingsIn(fromJson(desc, json as JsonValue), desc);
/** The first pass's findings in a message as given (protobuf-es refuses to build one with an unpaired surrogate). */
const findingsIn = (message: object, desc: DescMessage = probe) => firstPass(desc, message).map(({ fields, ...v }) => ({ ...v, fields: fields.map((f) => f.name) }));

describe("the free-form JSON limits, before decoding (JSON and binary alike)", () => {
  it("states its limits and words its violations as validation does", () => {
    expect(structLimits).toEqual({ maxValues: 1000, maxDepth: 32 });
    expect(structBudgetViolation("a.b", "values")).toEqual({ field: "a.b", ...tooMany });
    expect(structBudgetViolation("a.b", "depth")).toEqual({ field: "a.b", ...tooDeep });
    const error = overBudgetError({ field: "config", description: "is too big" });
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toBe("invalid request: config is too big");
    expect(error.violations).toEqual([{ field: "config", description: "is too big" }]);
  });

  it("accepts 1,000 values in one Struct and refuses 1,001, naming the field", () => {
    expect(beforeDecoding({ config: members(1000) })).toEqual({ json: undefined, binary: undefined });
    expect(beforeDecoding({ config: members(1001) })).toEqual({ json: { field: "config", ...tooMany }, binary: { field: "config", ...tooMany } });
  });

  it("counts list items and nested members as values, at any depth", () => {
    // 1 + 998 + 1 = 1,000 values: "l", its items, "s"; one more item is one too many.
    const doc = (items: number) => ({ l: Array.from({ length: items }, () => "x"), s: "y" });
    expect(beforeDecoding({ config: doc(998) })).toEqual({ json: undefined, binary: undefined });
    expect(beforeDecoding({ config: doc(999) }).json).toEqual({ field: "config", ...tooMany });
    expect(beforeDecoding({ config: doc(999) }).binary).toEqual({ field: "config", ...tooMany });
    // A ListValue field and a Value field count their items the same way.
    expect(beforeDecoding({ list: Array.from({ length: 1000 }, (_, i) => i) })).toEqual({ json: undefined, binary: undefined });
    expect(beforeDecoding({ list: Array.from({ length: 1001 }, (_, i) => i) })).toEqual({ json: { field: "list", ...tooMany }, binary: { field: "list", ...tooMany } });
    expect(beforeDecoding({ value: { a: members(999) } })).toEqual({ json: undefined, binary: undefined });
    expect(beforeDecoding({ value: { a: members(1000) } })).toEqual({ json: { field: "value", ...tooMany }, binary: { field: "value", ...tooMany } });
  });

  it("bounds the whole request, not each field: the field that crosses the limit is named", () => {
    expect(beforeDecoding({ config: members(600), list: Array.from({ length: 400 }, () => 1) })).toEqual({ json: undefined, binary: undefined });
    const over = beforeDecoding({ config: members(600), list: Array.from({ length: 401 }, () => 1) });
    expect(over).toEqual({ json: { field: "list", ...tooMany }, binary: { field: "list", ...tooMany } });
    // 2 × 500 leaves: each is within the limit, both together are not.
    const leaves = (n: number) => ({ leaves: [{ config: members(500) }, { config: members(n) }] });
    expect(beforeDecoding(leaves(500))).toEqual({ json: undefined, binary: undefined });
    expect(beforeDecoding(leaves(501))).toEqual({ json: { field: "leaves[1].config", ...tooMany }, binary: { field: "leaves[1].config", ...tooMany } });
  });

  it("accepts 32 levels of objects or lists and refuses 33, naming the field", () => {
    expect(beforeDecoding({ config: { a: objects(31) } })).toEqual({ json: undefined, binary: undefined });
    expect(beforeDecoding({ config: { a: objects(32) } })).toEqual({ json: { field: "config", ...tooDeep }, binary: { field: "config", ...tooDeep } });
    expect(beforeDecoding({ list: [lists(31)] })).toEqual({ json: undefined, binary: undefined });
    expect(beforeDecoding({ list: [lists(32)] })).toEqual({ json: { field: "list", ...tooDeep }, binary: { field: "list", ...tooDeep } });
    expect(beforeDecoding({ value: objects(32) })).toEqual({ json: undefined, binary: undefined });
    expect(beforeDecoding({ value: objects(33) })).toEqual({ json: { field: "value", ...tooDeep }, binary: { field: "value", ...tooDeep } });
    expect(beforeDecoding({ value: [[{ a: lists(29) }]] })).toEqual({ json: undefined, binary: undefined });
    expect(beforeDecoding({ value: [[{ a: lists(30) }]] })).toEqual({ json: { field: "value", ...tooDeep }, binary: { field: "value", ...tooDeep } });
  });

  it("stops at the first limit crossed: a document too deep and too large is reported for what came first", () => {
    // The deep member comes first: depth is what is reported, though the rest would exceed the values too.
    const deepFirst = { deep: objects(33), ...members(2000) };
    expect(structBudgetOfJson(probe, { config: deepFirst })).toEqual({ field: "config", ...tooDeep });
    const wideFirst = { ...members(2000), deep: objects(33) };
    expect(structBudgetOfJson(probe, { config: wideFirst })).toEqual({ field: "config", ...tooMany });
    expect(structBudgetOfBinary(probe, binary({ config: wideFirst }))).toEqual({ field: "config", ...tooMany });
  });

  it("finds Struct, Value and ListValue in nested, repeated, mapped, oneof and recursive fields, by proto or JSON name", () => {
    const big = members(1001);
    expect(structBudgetOfJson(probe, { leaf: { config: big } })).toEqual({ field: "leaf.config", ...tooMany });
    expect(structBudgetOfJson(probe, { leaves: [{}, { config: big }] })).toEqual({ field: "leaves[1].config", ...tooMany });
    expect(structBudgetOfJson(probe, { leafMap: { k: { config: big } } })).toEqual({ field: 'leaf_map["k"].config', ...tooMany });
    expect(structBudgetOfJson(probe, { leaf_map: { k: { config: big } } })).toEqual({ field: 'leaf_map["k"].config', ...tooMany });
    expect(structBudgetOfJson(probe, { structs: { k: big } })).toEqual({ field: 'structs["k"]', ...tooMany });
    expect(structBudgetOfJson(probe, { picked: { config: big } })).toEqual({ field: "picked.config", ...tooMany });
    expect(structBudgetOfJson(probe, { self: { self: { config: big } } })).toEqual({ field: "self.self.config", ...tooMany });
    // The binary walk names map values by their field (it reads no keys).
    expect(structBudgetOfBinary(probe, binary({ leaf: { config: big } }))).toEqual({ field: "leaf.config", ...tooMany });
    expect(structBudgetOfBinary(probe, binary({ leaves: [{}, { config: big }] }))).toEqual({ field: "leaves[1].config", ...tooMany });
    expect(structBudgetOfBinary(probe, binary({ leafMap: { k: { config: big } } }))).toEqual({ field: "leaf_map.config", ...tooMany });
    expect(structBudgetOfBinary(probe, binary({ structs: { k: big } }))).toEqual({ field: "structs", ...tooMany });
    expect(structBudgetOfBinary(probe, binary({ picked: { config: big } }))).toEqual({ field: "picked.config", ...tooMany });
    expect(structBudgetOfBinary(probe, binary({ self: { self: { config: big } } }))).toEqual({ field: "self.self.config", ...tooMany });
    // A request whose top-level message is itself a Struct.
    expect(structBudgetOfJson(budgetType("Leaf").fields[0]!.message!, big)).toEqual({ field: "", ...tooMany });
  });

  it("reads only what can hold JSON: unknown keys, scalars, nulls and ill-shaped values pass unjudged", () => {
    expect(structBudgetOfJson(probe, { unknown: members(5000), name: "x", config: null, value: "text", leaves: { config: members(5000) } })).toBeUndefined();
    expect(structBudgetOfJson(probe, { leafMap: [{ config: members(5000) }], leaf: [{ config: members(5000) }] })).toBeUndefined();
    expect(structBudgetOfJson(probe, { plain: { s: members(5000) } })).toBeUndefined();
    expect(structBudgetOfJson(probe, [members(5000)])).toBeUndefined();
    expect(structBudgetOfJson(probe, "config")).toBeUndefined();
    expect(structBudgetOfJson(budgetType("Plain"), { s: members(5000) })).toBeUndefined();
    // Only a value's own members count, as JSON.parse makes no others.
    const inherited = Object.create(members(2000)) as object;
    expect(structBudgetOfJson(probe, { config: inherited })).toBeUndefined();
  });

  it("refuses a list more than twice over its max_items before decoding, in the first pass's words", () => {
    const refused = (field: string, max: number) => ({ field, description: `must contain no more than ${max} item(s)` });
    expect(beforeDecoding({ tags: ["abc", "abc", "abc", "abc"] })).toEqual({ json: undefined, binary: undefined });
    expect(beforeDecoding({ tags: ["abc", "abc", "abc", "abc", "abc"] })).toEqual({ json: refused("tags", 2), binary: refused("tags", 2) });
    expect(beforeDecoding({ leaves: [{}, {}, {}, {}] })).toEqual({ json: undefined, binary: undefined });
    expect(beforeDecoding({ leaves: [{}, {}, {}, {}, {}] })).toEqual({ json: refused("leaves", 2), binary: refused("leaves", 2) });
    // A list with no max_items has no bound here.
    expect(beforeDecoding({ bare: Array.from({ length: 50 }, () => "x"), counts: Array.from({ length: 50 }, () => 1) })).toEqual({ json: undefined, binary: undefined });
    // Before anything inside the list is read.
    expect(structBudgetOfJson(probe, { leaves: [{ config: members(2000) }, {}, {}, {}, {}] })).toEqual(refused("leaves", 2));
    expect(structBudgetOfBinary(probe, binary({ leaves: [{}, {}, {}, {}, { config: members(2000) }] }))).toEqual(refused("leaves", 2));
  });

  it("counts packed binary lists by their items, whatever their width", () => {
    const refused = (field: string) => ({ field, description: "must contain no more than 2 item(s)" });
    const cases: [string, number][] = [
      ["doubles", 1.5],
      ["fixed64s", 7],
      ["sfixed64s", -7],
      ["fixeds", 7],
      ["floats", 1.5],
      ["sfixed32s", -7],
      ["ints", 300], // two bytes each
      ["ints", 128], // 0x80 0x01: the first byte is not the last
      ["sint32s", -300],
    ];
    for (const [name, item] of cases) {
      expect(structBudgetOfBinary(probe, binary({ [name]: [item, item, item, item] })), name).toBeUndefined();
      expect(structBudgetOfBinary(probe, binary({ [name]: [item, item, item, item, item] })), name).toEqual(refused(name));
    }
    // Strings and bytes are never packed: one item per occurrence, however long.
    expect(structBudgetOfBinary(probe, binary({ blobs: ["YWJjZA==", "YWJjZA==", "YWJjZA==", "YWJjZA=="] }))).toBeUndefined();
    expect(structBudgetOfBinary(probe, binary({ blobs: ["YQ==", "YQ==", "YQ==", "YQ==", "YQ=="] }))).toEqual(refused("blobs"));
    expect(structBudgetOfBinary(probe, binary({ tags: ["abcdefgh", "abcdefgh", "abcdefgh", "abcdefgh"] }))).toBeUndefined();
  });

  it("counts a packed enum list by its items, not its length prefix (ListFindings' status filter, max_items 4)", () => {
    const request = (n: number) => toBinary(ListFindingsRequestSchema, fromJson(ListFindingsRequestSchema, { status: Array.from({ length: n }, () => "STATUS_OPEN") }));
    expect(Status.OPEN).toBe(1);
    expect(structBudgetOfBinary(ListFindingsRequestSchema, request(8))).toBeUndefined();
    expect(structBudgetOfBinary(ListFindingsRequestSchema, request(9))).toEqual({ field: "status", description: "must contain no more than 4 item(s)" });
  });

  it("adds up a binary list's items across runs and single occurrences", () => {
    const w = new BinaryWriter();
    w.tag(14, WireType.LengthDelimited).fork().int64(1).int64(2).int64(3).join(); // a packed run of 3
    w.tag(14, WireType.Varint).int64(4); // and one more, unpacked
    expect(structBudgetOfBinary(probe, w.finish())).toBeUndefined();
    const again = new BinaryWriter();
    again.tag(14, WireType.LengthDelimited).fork().int64(1).int64(2).int64(3).join();
    again.tag(14, WireType.Varint).int64(4).tag(14, WireType.Varint).int64(5);
    expect(structBudgetOfBinary(probe, again.finish())).toEqual({ field: "ints", description: "must contain no more than 2 item(s)" });
    const single = new BinaryWriter();
    for (let i = 0; i < 5; i++) single.tag(14, WireType.Varint).int64(i);
    expect(structBudgetOfBinary(probe, single.finish())).toEqual({ field: "ints", description: "must contain no more than 2 item(s)" });
  });

  it("skips in binary what cannot hold JSON: unknown fields, other wire types, map keys and Struct's stray fields", () => {
    const w = new BinaryWriter();
    w.tag(99, WireType.LengthDelimited).bytes(binary({ config: members(2000) })); // unknown field: not read
    w.tag(9, WireType.Varint).int32(5); // the leaf field with a wrong wire type: left to the decoder
    w.tag(20, WireType.LengthDelimited).bytes(new Uint8Array([0x0a, 0x01, 0x41])); // plain: no JSON in it
    expect(structBudgetOfBinary(probe, w.finish())).toBeUndefined();
    // A map entry whose key comes after its value, with a stray varint: only the value (field 2) is read.
    const entry = new BinaryWriter();
    entry.tag(3, WireType.Varint).int32(1).tag(2, WireType.LengthDelimited).bytes(binary({ config: members(1001) }, budgetType("Leaf"))).tag(1, WireType.LengthDelimited).string("k");
    const withMap = new BinaryWriter().tag(8, WireType.LengthDelimited).bytes(entry.finish()).finish();
    expect(structBudgetOfBinary(probe, withMap)).toEqual({ field: "leaf_map.config", ...tooMany });
    const keyOnly = new BinaryWriter().tag(8, WireType.LengthDelimited).bytes(new BinaryWriter().tag(2, WireType.Varint).int32(1).finish()).finish();
    expect(structBudgetOfBinary(probe, keyOnly)).toBeUndefined();
    // A Struct with a stray field beside its entries, and an entry with a stray field beside its value.
    const struct = new BinaryWriter();
    struct.tag(2, WireType.Varint).int32(1).tag(1, WireType.Varint).int32(1);
    for (let i = 0; i < 1000; i++) struct.tag(1, WireType.LengthDelimited).bytes(new BinaryWriter().tag(1, WireType.LengthDelimited).string(`k${i}`).tag(3, WireType.Varint).int32(1).tag(2, WireType.LengthDelimited).bytes(new Uint8Array([0x08, 0x00])).finish());
    const structRequest = () => new BinaryWriter().tag(4, WireType.LengthDelimited).bytes(struct.finish()).finish();
    expect(structBudgetOfBinary(probe, structRequest())).toBeUndefined();
  });

  it("reads a Value's nested Struct (5) and ListValue (6) only, at one level deeper", () => {
    // A Value holding a string (3) and a number (2): nothing to count.
    const scalars = new BinaryWriter().tag(3, WireType.LengthDelimited).string("x").tag(2, WireType.Bit64).double(1).finish();
    expect(structBudgetOfBinary(probe, new BinaryWriter().tag(5, WireType.LengthDelimited).bytes(scalars).finish())).toBeUndefined();
    // struct_value (5) with a wrong wire type is skipped, not read as a Struct.
    const odd = new BinaryWriter().tag(5, WireType.Varint).int32(1).finish();
    expect(structBudgetOfBinary(probe, new BinaryWriter().tag(5, WireType.LengthDelimited).bytes(odd).finish())).toBeUndefined();
    // A Value whose list holds a Struct whose member holds a list: three levels, the last one full.
    expect(structBudgetOfBinary(probe, binary({ value: [{ a: Array.from({ length: 998 }, () => 1) }] }))).toBeUndefined();
    expect(structBudgetOfBinary(probe, binary({ value: [{ a: Array.from({ length: 999 }, () => 1) }] }))).toEqual({ field: "value", ...tooMany });
  });

  it("does not look into a binary request that cannot hold JSON or a limited list, however broken", () => {
    const garbage = new Uint8Array([0x0a, 0xff, 0xff, 0xff]);
    expect(structBudgetOfBinary(budgetType("Plain"), garbage)).toBeUndefined();
    expect(() => structBudgetOfBinary(probe, garbage)).toThrow();
    expect(structBudgetOfBinary(probe, new Uint8Array())).toBeUndefined();
  });

  it("knows which messages can hold JSON or a limited list, through cycles", () => {
    const reaches = (name: string) => reachesJson(budgetType(name));
    expect(["Probe", "Leaf", "JsonLoop", "LimitedLoop", "LeafMapOnly"].map(reaches)).toEqual([true, true, true, true, true]);
    expect(["Plain", "StringMapOnly"].map(reaches)).toEqual([false, false]);
    expect(reachesJson(budgetType("Leaf").fields[0]!.message!)).toBe(true);
    expect(maxItemsOf(probe.field.tags!)).toBe(2);
    expect(maxItemsOf(probe.field.codes!)).toBeUndefined();
    expect(maxItemsOf(probe.field.bare!)).toBeUndefined();
  });
});

describe("the first pass over a decoded request", () => {
  const size = (path: string, description: string, gross: boolean, fields = [path.replace(/\[.*$/, "")]) => ({ path, description, kind: "size", gross, fields });
  const integrity = (path: string, description: string, fields = [path.replace(/\[.*$/, "")]) => ({ path, description, kind: "integrity", gross: false, fields });
  const nul = "must not contain NUL characters";
  const unpaired = "must be valid Unicode (unpaired surrogate)";

  it("accepts a string at its max_len in code points, and flags one over; grossly over beyond twice the limit", () => {
    expect(findings({ name: "abc" })).toEqual([]);
    expect(findings({ name: "\u{1F600}\u{10000}\u{10FFFF}" })).toEqual([]); // 6 UTF-16 units, 3 code points
    expect(findings({ name: "\uD800\uDC00\uDBFF\uDFFF\uD800\uDFFF" })).toEqual([]); // the surrogate ranges' ends
    expect(findings({ name: "abcd" })).toEqual([size("name", "must be at most 3 characters", false)]);
    expect(findings({ name: "abcdef" })).toEqual([size("name", "must be at most 3 characters", false)]);
    expect(findings({ name: "abcdefg" })).toEqual([size("name", "must be at most 3 characters", true)]);
    expect(findings({ name: "\u{1F600}".repeat(4) })).toEqual([size("name", "must be at most 3 characters", false)]);
    expect(findings({ name: "\u{1F600}".repeat(7) })).toEqual([size("name", "must be at most 3 characters", true)]);
    expect(findings({ code: "abcdefgh" })).toEqual([]); // min_len alone sets no maximum
  });

  it("flags NUL characters and unpaired surrogates in any string, NUL first", () => {
    expect(findings({ code: "a\0b" })).toEqual([integrity("code", nul)]);
    expect(findingsIn({ code: "a\uD800b" })).toEqual([integrity("code", unpaired)]);
    expect(findingsIn({ code: "\uDC00" })).toEqual([integrity("code", unpaired)]);
    expect(findingsIn({ code: "\0\uD800" })).toEqual([integrity("code", nul)]);
    // Integrity and size are separate findings; a lone surrogate counts as one code point.
    expect(findingsIn({ name: "ab\uDC00c" })).toEqual([integrity("name", unpaired), size("name", "must be at most 3 characters", false)]);
    expect(findingsIn({ name: "abc\uD800" })).toEqual([integrity("name", unpaired), size("name", "must be at most 3 characters", false)]);
    expect(findings({ name: "a\0" })).toEqual([integrity("name", nul)]);
  });

  it("checks list items and map keys and values, naming the item", () => {
    expect(findings({ tags: ["abc", "a\0"] })).toEqual([integrity("tags[1]", nul)]);
    expect(findings({ tags: ["abcd"] })).toEqual([size("tags[0]", "must be at most 3 characters", false)]);
    expect(findings({ codes: ["abc", "abc", "abcd"] })).toEqual([size("codes[2]", "must be at most 3 characters", false)]);
    expect(findings({ bare: ["abcdefgh", "x\0"] })).toEqual([integrity("bare[1]", nul)]);
    expect(findings({ labels: { "k\0": "v", ok: "v\0" } })).toEqual([integrity('labels["k\\u0000"]', nul), integrity('labels["ok"]', nul)]);
    expect(findings({ numbers: { a: 1, "b\0": 2 } })).toEqual([integrity('numbers["b\\u0000"]', nul)]);
    expect(findings({ counts: [1, 2, 3], doubles: [1, 2] })).toEqual([]);
    expect(findings({ note: "a\0" })).toEqual([integrity("note", nul)]);
    expect(findings({ leaves: [{}, { config: { a: "\0" } }] })).toEqual([integrity("leaves[1].config.a", nul, ["leaves", "config"])]);
    expect(findings({ leafMap: { k: { config: { a: "\0" } } } })).toEqual([integrity('leaf_map["k"].config.a', nul, ["leaf_map", "config"])]);
    expect(findings({ leaf: { config: { a: "\0" } } })).toEqual([integrity("leaf.config.a", nul, ["leaf", "config"])]);
  });

  it("flags a list over max_items, reads it if at most twice over, and skips it beyond", () => {
    expect(findings({ tags: ["a", "b"] })).toEqual([]);
    expect(findings({ tags: ["a", "b", "c"] })).toEqual([size("tags", "must contain no more than 2 item(s)", false)]);
    expect(findings({ tags: ["a", "b", "c", "d\0"] })).toEqual([size("tags", "must contain no more than 2 item(s)", false), integrity("tags[3]", nul)]);
    expect(findings({ tags: ["a", "b", "c", "d", "e\0"] })).toEqual([size("tags", "must contain no more than 2 item(s)", true)]);
    expect(findings({ leaves: [{}, {}, { config: { a: "\0" } }, {}, {}] })).toEqual([size("leaves", "must contain no more than 2 item(s)", true)]);
  });

  it("flags a map over max_pairs, reads it if at most twice over, and skips it beyond", () => {
    expect(findings({ labels: { a: "", b: "" } })).toEqual([]);
    expect(findings({ labels: { a: "", b: "", c: "" } })).toEqual([size("labels", "map must be at most 2 entries", false)]);
    expect(findings({ labels: { a: "", b: "", c: "", d: "\0" } })).toEqual([size("labels", "map must be at most 2 entries", false), integrity('labels["d"]', nul)]);
    expect(findings({ labels: { a: "", b: "", c: "", d: "", e: "\0" } })).toEqual([size("labels", "map must be at most 2 entries", true)]);
    expect(findings({ leafMap: { a: {}, b: {}, c: {} } })).toEqual([]); // no max_pairs
  });

  it("reads only the chosen case of a oneof", () => {
    expect(findings({ pick: "abcd" })).toEqual([size("pick", "must be at most 3 characters", false)]);
    expect(findings({ picked: { config: { a: "\0" } } })).toEqual([integrity("picked.config.a", nul, ["picked", "config"])]);
    // A message whose oneof object claims another case holds nothing for this field.
    const message = { choice: { case: "picked", value: { config: {} } }, pick: "abcd" };
    expect(firstPass(probe, message)).toEqual([]);
  });

  it("checks the strings of free-form JSON, keys and values, at any depth", () => {
    expect(findings({ config: { a: { b: ["x", "y\0"] } } })).toEqual([integrity("config.a.b[1]", nul, ["config"])]);
    expect(findings({ config: { "k\0": 1 } })).toEqual([integrity("config.k\0", nul, ["config"])]);
    expect(findingsIn({ config: { l: [1, "\uD800"] } })).toEqual([integrity("config.l[1]", unpaired, ["config"])]);
    expect(findings({ structs: { k: { a: "\0" } } })).toEqual([integrity('structs["k"].a', nul, ["structs"])]);
  });

  it("bounds the request's free-form JSON as the check before decoding does, reported once, as gross", () => {
    const overValues = size("config", tooMany.description, true, ["config"]);
    expect(findings({ config: members(1000) })).toEqual([]);
    expect(findings({ config: members(1001) })).toEqual([overValues]);
    expect(findings({ config: members(600), leaf: { config: { l: Array.from({ length: 399 }, () => 1) } } })).toEqual([]);
    expect(findings({ config: members(600), leaf: { config: { l: Array.from({ length: 400 }, () => 1) } } })).toEqual([size("leaf.config", tooMany.description, true, ["leaf", "config"])]);
    // Over once: the rest of the request's JSON is not read, not even for NUL characters.
    expect(findings({ config: members(1001), leaf: { config: { a: "\0" } } })).toEqual([overValues]);
    expect(findings({ config: { a: members(1000), b: { c: "\0" } } })).toEqual([overValues]);
    expect(findings({ config: { a: objects(31) } })).toEqual([]);
    expect(findings({ config: { a: objects(32) } })).toEqual([size("config", tooDeep.description, true, ["config"])]);
    expect(findings({ leaves: [{ config: { a: objects(32) } }] })).toEqual([size("leaves[0].config", tooDeep.description, true, ["leaves", "config"])]);
    // Strings elsewhere are still checked after the JSON is over.
    expect(findings({ name: "a\0", config: members(1001), code: "b\0" })).toEqual([integrity("name", nul), overValues, integrity("code", nul)]);
  });

  it("takes what a decoded message may lack: missing and null fields, null list items", () => {
    expect(firstPass(probe, {})).toEqual([]);
    expect(firstPass(probe, { tags: null, labels: null, leaves: null, config: null, name: null })).toEqual([]);
    expect(firstPass(probe, { leaves: [null, undefined], leafMap: { a: null } })).toEqual([]);
  });
});
