import type { AnyDesc, DescFile } from "@bufbuild/protobuf";

/**
 * The comment written above (or else beside) a proto element, from the
 * source info that `buf build` keeps and generated code drops. Returns
 * undefined when the descriptor carries no source info or no comment, so
 * the OpenAPI document simply has no description there.
 */
export function protoComment(desc: Exclude<AnyDesc, DescFile>): string | undefined {
  const file = fileOf(desc);
  const path = sourcePath(desc).join(",");
  const location = file.proto.sourceCodeInfo?.location.find((l) => l.path.join(",") === path);
  const text = location?.leadingComments || location?.trailingComments;
  if (!text) return undefined;
  // Comments keep the space after `//` on every line; drop it, keep paragraphs.
  return text
    .split("\n")
    .map((line) => line.replace(/^ /, "").trimEnd())
    .join("\n")
    .trim();
}

function fileOf(desc: Exclude<AnyDesc, DescFile>): DescFile {
  switch (desc.kind) {
    case "field":
    case "oneof":
    case "enum_value":
    case "rpc":
      return fileOf(desc.parent);
    default:
      return desc.file;
  }
}

// Paths into FileDescriptorProto by field number, as descriptor.proto's
// SourceCodeInfo.Location.path documents them.
function sourcePath(desc: Exclude<AnyDesc, DescFile>): number[] {
  switch (desc.kind) {
    case "message":
      return desc.parent
        ? [...sourcePath(desc.parent), 3, desc.parent.proto.nestedType.indexOf(desc.proto)]
        : [4, desc.file.proto.messageType.indexOf(desc.proto)];
    case "enum":
      return desc.parent
        ? [...sourcePath(desc.parent), 4, desc.parent.proto.enumType.indexOf(desc.proto)]
        : [5, desc.file.proto.enumType.indexOf(desc.proto)];
    case "field":
      return [...sourcePath(desc.parent), 2, desc.parent.proto.field.indexOf(desc.proto)];
    case "oneof":
      return [...sourcePath(desc.parent), 8, desc.parent.proto.oneofDecl.indexOf(desc.proto)];
    case "enum_value":
      return [...sourcePath(desc.parent), 2, desc.parent.proto.value.indexOf(desc.proto)];
    case "service":
      return [6, desc.file.proto.service.indexOf(desc.proto)];
    case "rpc":
      return [...sourcePath(desc.parent), 2, desc.parent.proto.method.indexOf(desc.proto)];
    case "extension":
      return desc.parent
        ? [...sourcePath(desc.parent), 6, desc.parent.proto.extension.indexOf(desc.proto)]
        : [7, desc.file.proto.extension.indexOf(desc.proto)];
  }
}
