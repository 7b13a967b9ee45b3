// A made-up proto file for the request budget's direct tests: one message
// with every kind of field the first pass and the free-form JSON budget look
// at (limited strings, lists, maps, Struct/Value/ListValue, nested, repeated
// and mapped messages, a oneof, packed and unpacked scalar lists, a wrapper,
// recursion), each with the `buf.validate` rules a real proto would carry.
import { create, createFileRegistry, type DescMessage, type MessageInitShape, setExtension } from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  DescriptorProtoSchema,
  type FieldDescriptorProto,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FieldDescriptorProtoSchema,
  FieldOptionsSchema,
  FileDescriptorProtoSchema,
  file_google_protobuf_struct,
  file_google_protobuf_wrappers,
} from "@bufbuild/protobuf/wkt";
import { FieldRulesSchema, field as fieldRulesOption, file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

interface FieldInit {
  readonly label?: Label;
  readonly typeName?: string;
  readonly oneofIndex?: number;
  readonly rules?: MessageInitShape<typeof FieldRulesSchema>;
}

const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** A field, its `buf.validate` rules set as protoc sets them: as an extension of its options. */
function field(name: string, number: number, type: Type, extra: FieldInit = {}): FieldDescriptorProto {
  const { rules, ...rest } = extra;
  const f = create(FieldDescriptorProtoSchema, { name, number, type, label: Label.OPTIONAL, jsonName: camel(name), ...rest });
  if (rules) {
    f.options = create(FieldOptionsSchema);
    setExtension(f.options, fieldRulesOption, create(FieldRulesSchema, rules));
  }
  return f;
}
const repeated = (name: string, number: number, type: Type, extra: FieldInit = {}) => field(name, number, type, { label: Label.REPEATED, ...extra });
const message = (name: string, number: number, typeName: string, extra: FieldInit = {}) => field(name, number, Type.MESSAGE, { typeName, ...extra });
const maxItems = (n: number) => ({ type: { case: "repeated" as const, value: { maxItems: BigInt(n) } } });

/** A map field `name` and its entry type (for the enclosing message's nestedType). */
function map(owner: string, name: string, number: number, value: { type: Type; typeName?: string }, rules?: FieldInit["rules"]): { field: FieldDescriptorProto; entry: DescriptorProto } {
  const entry = `${camel(name).replace(/^./, (c) => c.toUpperCase())}Entry`;
  return {
    field: field(name, number, Type.MESSAGE, { label: Label.REPEATED, typeName: `.t.v1.${owner}.${entry}`, rules }),
    entry: create(DescriptorProtoSchema, {
      name: entry,
      options: { mapEntry: true },
      field: [field("key", 1, Type.STRING), field("value", 2, value.type, value.typeName ? { typeName: value.typeName } : {})],
    }),
  };
}

const labels = map("Probe", "labels", 3, { type: Type.STRING }, { type: { case: "map", value: { maxPairs: 2n } } });
const leafMap = map("Probe", "leaf_map", 8, { type: Type.MESSAGE, typeName: ".t.v1.Leaf" });
const structs = map("Probe", "structs", 19, { type: Type.MESSAGE, typeName: ".google.protobuf.Struct" });
const numbers = map("Probe", "numbers", 27, { type: Type.INT32 });
const leafHolder = map("LeafMapOnly", "by_key", 1, { type: Type.MESSAGE, typeName: ".t.v1.Leaf" });
const stringMap = map("StringMapOnly", "by_key", 1, { type: Type.STRING });

const file = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "t/v1/budget.proto",
    package: "t.v1",
    syntax: "proto3",
    dependency: ["google/protobuf/struct.proto", "google/protobuf/wrappers.proto", "buf/validate/validate.proto"],
    messageType: [
      { name: "Leaf", field: [message("config", 1, ".google.protobuf.Struct")] },
      { name: "Plain", field: [field("s", 1, Type.STRING), message("next", 2, ".t.v1.Plain")] },
      { name: "JsonLoop", field: [message("next", 1, ".t.v1.JsonLoop"), message("config", 2, ".google.protobuf.Struct")] },
      { name: "LimitedLoop", field: [message("next", 1, ".t.v1.LimitedLoop"), repeated("ids", 2, Type.STRING, { rules: maxItems(1) })] },
      { name: "LeafMapOnly", field: [leafHolder.field], nestedType: [leafHolder.entry] },
      { name: "StringMapOnly", field: [stringMap.field], nestedType: [stringMap.entry] },
      {
        name: "Probe",
        oneofDecl: [{ name: "choice" }],
        nestedType: [labels.entry, leafMap.entry, structs.entry, numbers.entry],
        field: [
          field("name", 1, Type.STRING, { rules: { type: { case: "string", value: { maxLen: 3n } } } }),
          repeated("tags", 2, Type.STRING, { rules: { type: { case: "repeated", value: { maxItems: 2n, items: { type: { case: "string", value: { maxLen: 3n } } } } } } }),
          labels.field,
          message("config", 4, ".google.protobuf.Struct"),
          message("value", 5, ".google.protobuf.Value"),
          message("list", 6, ".google.protobuf.ListValue"),
          message("leaves", 7, ".t.v1.Leaf", { label: Label.REPEATED, rules: maxItems(2) }),
          leafMap.field,
          message("leaf", 9, ".t.v1.Leaf"),
          field("pick", 10, Type.STRING, { oneofIndex: 0, rules: { type: { case: "string", value: { maxLen: 3n } } } }),
          message("picked", 11, ".t.v1.Leaf", { oneofIndex: 0 }),
          repeated("doubles", 12, Type.DOUBLE, { rules: maxItems(2) }),
          repeated("fixeds", 13, Type.FIXED32, { rules: maxItems(2) }),
          repeated("ints", 14, Type.INT64, { rules: maxItems(2) }),
          repeated("blobs", 15, Type.BYTES, { rules: maxItems(2) }),
          message("note", 16, ".google.protobuf.StringValue"),
          repeated("counts", 17, Type.INT32),
          message("self", 18, ".t.v1.Probe"),
          structs.field,
          message("plain", 20, ".t.v1.Plain"),
          repeated("fixed64s", 21, Type.FIXED64, { rules: maxItems(2) }),
          repeated("floats", 22, Type.FLOAT, { rules: maxItems(2) }),
          repeated("sfixed32s", 23, Type.SFIXED32, { rules: maxItems(2) }),
          repeated("sfixed64s", 24, Type.SFIXED64, { rules: maxItems(2) }),
          repeated("bare", 25, Type.STRING),
          repeated("codes", 26, Type.STRING, { rules: { type: { case: "repeated", value: { items: { type: { case: "string", value: { maxLen: 3n } } } } } } }),
          numbers.field,
          field("code", 28, Type.STRING, { rules: { type: { case: "string", value: { minLen: 1n } } } }),
          repeated("sint32s", 29, Type.SINT32, { rules: maxItems(2) }),
        ],
      },
    ],
  }),
  (name) => ({ "google/protobuf/struct.proto": file_google_protobuf_struct, "google/protobuf/wrappers.proto": file_google_protobuf_wrappers, "buf/validate/validate.proto": file_buf_validate_validate })[name],
);

/** A message type of t/v1/budget.proto, by its short name. */
export function budgetType(name: string): DescMessage {
  const desc = file.getMessage(`t.v1.${name}`);
  if (!desc) throw new Error(`no message t.v1.${name}`);
  return desc;
}
