// Prints a compiled file descriptor back out as .proto source.
//
// @bufbuild/protovalidate ships buf/validate/validate.proto only as the
// FileDescriptorProto embedded in its generated JS, and the Buf Schema
// Registry (where the source lives) is unreachable from our machines. buf and
// protoc-gen-es need the source to compile `import "buf/validate/validate.proto"`,
// so `npm run proto:deps` prints it from the descriptor with this module.
//
// It prints exactly the constructs a descriptor can hold that validate.proto
// uses (proto2 syntax, messages, oneofs, enums, reserved ranges and names,
// extension ranges, file-level extensions, file and field options, custom
// options as aggregate values) and throws on anything else, so that a newer
// protovalidate that needs more fails the build instead of printing a
// different schema. test/validate-proto.test.ts compiles the output with buf
// and checks that it yields the same descriptor.
import { getExtension, ScalarType } from "@bufbuild/protobuf";
import { protoCamelCase, reflect } from "@bufbuild/protobuf/reflect";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
} from "@bufbuild/protobuf/wkt";

const MAX_FIELD = 536870912; // exclusive end of the field number space ("max")

/**
 * @param {import("@bufbuild/protobuf").DescFile} file the file to print
 * @param {import("@bufbuild/protobuf").Registry} registry resolves the custom options used in it
 * @param {string} header comment lines printed first (without `//`)
 * @returns {string}
 */
export function printFileDescriptor(file, registry, header = []) {
  const p = file.proto;
  const out = [];
  const line = (depth, text) => out.push(text === "" ? "" : "  ".repeat(depth) + text);
  for (const h of header) line(0, h === "" ? "//" : `// ${h}`);
  if (header.length) line(0, "");
  if (p.edition !== 0) unsupported("editions");
  line(0, `syntax = "${p.syntax === "" ? "proto2" : p.syntax}";`);
  line(0, "");
  if (p.package) line(0, `package ${p.package};`), line(0, "");
  if (p.publicDependency.length || p.weakDependency.length) unsupported("public or weak imports");
  for (const dep of file.dependencies) line(0, `import "${dep.proto.name}";`);
  if (file.dependencies.length) line(0, "");
  for (const opt of printOptions(p.options, registry)) line(0, `option ${opt};`);
  if (p.options) line(0, "");
  if (p.service.length) unsupported("services");

  const proto3 = p.syntax === "proto3";
  const printField = (depth, f, inOneof) => {
    const label =
      inOneof || f.proto3Optional ? (f.proto3Optional ? "optional " : "")
      : f.label === Label.REPEATED ? "repeated "
      : f.label === Label.REQUIRED ? "required "
      : proto3 ? "" : "optional ";
    if (f.type === Type.GROUP) unsupported("groups");
    const type = f.typeName || typeNames[f.type] || unsupported(`field type ${f.type}`);
    const opts = [];
    if (f.defaultValue) opts.push(`default = ${f.type === Type.STRING ? quote(f.defaultValue) : f.defaultValue}`);
    if (f.jsonName && f.jsonName !== protoCamelCase(f.name) && !f.extendee) opts.push(`json_name = ${quote(f.jsonName)}`);
    opts.push(...printOptions(f.options, registry));
    const suffix = opts.length ? ` [\n${opts.map((o) => "  ".repeat(depth + 1) + o).join(",\n")}\n${"  ".repeat(depth)}]` : "";
    line(depth, `${label}${type} ${f.name} = ${f.number}${suffix};`);
  };

  const printEnum = (depth, e) => {
    line(depth, `enum ${e.name} {`);
    for (const opt of printOptions(e.options, registry)) line(depth + 1, `option ${opt};`);
    for (const v of e.value) {
      const opts = printOptions(v.options, registry);
      line(depth + 1, `${v.name} = ${v.number}${opts.length ? ` [${opts.join(", ")}]` : ""};`);
    }
    for (const r of e.reservedRange) line(depth + 1, `reserved ${range(r.start, r.end)};`); // inclusive end
    if (e.reservedName.length) line(depth + 1, `reserved ${e.reservedName.map(quote).join(", ")};`);
    line(depth, "}");
  };

  const printMessage = (depth, m) => {
    line(depth, `message ${m.name} {`);
    for (const opt of printOptions(m.options, registry)) line(depth + 1, `option ${opt};`);
    const printedOneofs = new Set();
    for (let i = 0; i < m.field.length; i++) {
      const f = m.field[i];
      const real = f.oneofIndex !== undefined && isSet(f, "oneofIndex") && !f.proto3Optional;
      if (!real) {
        printField(depth + 1, f, false);
        continue;
      }
      const index = f.oneofIndex;
      if (printedOneofs.has(index)) unsupported(`non-contiguous oneof ${m.oneofDecl[index].name}`);
      printedOneofs.add(index);
      const decl = m.oneofDecl[index];
      line(depth + 1, `oneof ${decl.name} {`);
      for (const opt of printOptions(decl.options, registry)) line(depth + 2, `option ${opt};`);
      for (; i < m.field.length && isSet(m.field[i], "oneofIndex") && m.field[i].oneofIndex === index; i++) {
        printField(depth + 2, m.field[i], true);
      }
      i--;
      line(depth + 1, "}");
    }
    for (const n of m.nestedType) {
      if (n.options?.mapEntry) unsupported("map fields");
      printMessage(depth + 1, n);
    }
    for (const e of m.enumType) printEnum(depth + 1, e);
    printExtensions(depth + 1, m.extension);
    for (const r of m.extensionRange) {
      if (r.options) unsupported("extension range options");
      line(depth + 1, `extensions ${range(r.start, r.end - 1)};`);
    }
    for (const r of m.reservedRange) line(depth + 1, `reserved ${range(r.start, r.end - 1)};`);
    if (m.reservedName.length) line(depth + 1, `reserved ${m.reservedName.map(quote).join(", ")};`);
    line(depth, "}");
  };

  const printExtensions = (depth, extensions) => {
    for (let i = 0; i < extensions.length; ) {
      const extendee = extensions[i].extendee;
      line(depth, `extend ${extendee} {`);
      for (; i < extensions.length && extensions[i].extendee === extendee; i++) printField(depth + 1, extensions[i], false);
      line(depth, "}");
    }
  };

  for (const m of p.messageType) printMessage(0, m), line(0, "");
  for (const e of p.enumType) printEnum(0, e), line(0, "");
  printExtensions(0, p.extension);
  return out.join("\n") + "\n";
}

const typeNames = {
  [Type.DOUBLE]: "double",
  [Type.FLOAT]: "float",
  [Type.INT64]: "int64",
  [Type.UINT64]: "uint64",
  [Type.INT32]: "int32",
  [Type.FIXED64]: "fixed64",
  [Type.FIXED32]: "fixed32",
  [Type.BOOL]: "bool",
  [Type.STRING]: "string",
  [Type.BYTES]: "bytes",
  [Type.UINT32]: "uint32",
  [Type.SFIXED32]: "sfixed32",
  [Type.SFIXED64]: "sfixed64",
  [Type.SINT32]: "sint32",
  [Type.SINT64]: "sint64",
};

function unsupported(what) {
  throw new Error(`descriptor-to-proto: ${what} not supported`);
}

function isSet(proto, field) {
  return Object.prototype.hasOwnProperty.call(proto, field);
}

function range(start, endInclusive) {
  const end = endInclusive === MAX_FIELD - 1 ? "max" : String(endInclusive);
  return start === endInclusive ? String(start) : `${start} to ${end}`;
}

/**
 * The options set on a descriptor element, as `name = value` strings: the
 * standard ones (for example `java_package`) and custom ones, which the
 * descriptor holds as unknown fields, as `(full.name) = value`.
 */
function printOptions(options, registry) {
  if (!options) return [];
  const r = reflect(options.$typeName ? registry.getMessage(options.$typeName) ?? schemaOf(options) : schemaOf(options), options);
  const out = [];
  for (const field of r.fields) {
    if (!r.isSet(field)) continue;
    if (field.name === "uninterpreted_option") unsupported("uninterpreted options");
    out.push(`${field.name} = ${textValue(field, r.get(field), registry)}`);
  }
  const seen = new Set();
  for (const u of options.$unknown ?? []) {
    if (seen.has(u.no)) continue;
    seen.add(u.no);
    const ext = registry.getExtensionFor(r.desc, u.no) ?? unsupported(`unknown option ${u.no} on ${r.desc.typeName}`);
    const value = getExtension(options, ext);
    if (ext.fieldKind === "list") {
      for (const item of value) out.push(`(${ext.typeName}) = ${textSingular(ext, item, registry)}`);
    } else {
      out.push(`(${ext.typeName}) = ${textSingular(ext, value, registry)}`);
    }
  }
  return out;
}

function schemaOf(message) {
  return unsupported(`options message ${message.$typeName} missing from the registry`);
}

/** A field's value from a reflected message, in protobuf text format. */
function textValue(field, value, registry) {
  if (field.fieldKind === "list") {
    const items = [];
    for (const item of value) items.push(textSingular(field, unwrap(item), registry));
    return `[${items.join(", ")}]`;
  }
  if (field.fieldKind === "map") unsupported("map values in options");
  return textSingular(field, unwrap(value), registry);
}

function unwrap(value) {
  return value && typeof value === "object" && "message" in value && "desc" in value ? value.message : value;
}

function textSingular(field, value, registry) {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind;
  if (kind === "enum") return field.enum.values.find((v) => v.number === value)?.name ?? String(value);
  if (kind === "message") return textMessage(field.message, value, registry);
  switch (field.scalar) {
    case ScalarType.STRING:
      return quote(value);
    case ScalarType.BYTES:
      return quoteBytes(value);
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      return Number.isNaN(value) ? "nan" : value === Infinity ? "inf" : value === -Infinity ? "-inf" : String(value);
    default:
      return String(value);
  }
}

function textMessage(desc, message, registry) {
  const r = reflect(desc, message);
  const parts = [];
  for (const f of r.fields) {
    if (!r.isSet(f)) continue;
    parts.push(`${f.name}: ${textValue(f, r.get(f), registry)}`);
  }
  if (message.$unknown?.length) unsupported(`unknown fields in an option value of ${desc.typeName}`);
  return `{${parts.join(", ")}}`;
}

function quote(s) {
  return quoteBytes(new TextEncoder().encode(s));
}

/** Text-format string literal: printable ASCII as is, everything else as octal escapes of its UTF-8 bytes. */
function quoteBytes(bytes) {
  let out = '"';
  for (const b of bytes) {
    if (b === 0x22) out += '\\"';
    else if (b === 0x5c) out += "\\\\";
    else if (b === 0x0a) out += "\\n";
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += "\\" + b.toString(8).padStart(3, "0");
  }
  return out + '"';
}
