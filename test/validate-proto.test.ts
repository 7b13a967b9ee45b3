import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clearField, createRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import { file_google_protobuf_descriptor, FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error -- a plain .mjs build script, without type declarations
import { printFileDescriptor } from "../.ci/descriptor-to-proto.mjs";
import { ensureProtoDeps, runBuf } from "./support/buf-cli.js";

// `npm run proto:deps` prints buf/validate/validate.proto from the descriptor
// @bufbuild/protovalidate embeds (the package ships no .proto source and the
// Buf Schema Registry is unreachable). The round trip must be exact: the
// printed source, compiled by buf, yields byte for byte the descriptor it was
// printed from, custom options (the CEL of every standard rule) included.
describe("buf/validate/validate.proto printed from @bufbuild/protovalidate's descriptor", () => {
  const dir = mkdtempSync(join(tmpdir(), "anvil-validate-proto-"));
  beforeAll(ensureProtoDeps);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("compiles with buf into the same descriptor", async () => {
    const registry = createRegistry(file_buf_validate_validate, file_google_protobuf_descriptor);
    const source: string = printFileDescriptor(file_buf_validate_validate, registry);
    mkdirSync(join(dir, "buf/validate"), { recursive: true });
    writeFileSync(join(dir, "buf/validate/validate.proto"), source);
    writeFileSync(join(dir, "buf.yaml"), "version: v2\n");
    const built = await runBuf(["build", "--path", "buf/validate/validate.proto", "-o", "image.binpb"], dir);
    expect(built, built.stderr).toMatchObject({ code: 0 });

    const image = fromBinary(FileDescriptorSetSchema, readFileSync(join(dir, "image.binpb")));
    const compiled = image.file.find((f) => f.name === "buf/validate/validate.proto");
    expect(compiled).toBeDefined();
    // Not part of the schema: comments/positions, and buf's image annotation (field 8042).
    clearField(compiled!, FileDescriptorProtoSchema.field.sourceCodeInfo);
    compiled!.$unknown = compiled!.$unknown?.filter((u) => u.no !== 8042);
    if (compiled!.$unknown?.length === 0) delete compiled!.$unknown;
    const expected = toBinary(FileDescriptorProtoSchema, file_buf_validate_validate.proto);
    expect(Buffer.from(toBinary(FileDescriptorProtoSchema, compiled!)).equals(Buffer.from(expected))).toBe(true);
  });

  it("is what npm run proto:deps wrote into .proto-deps", () => {
    const written = readFileSync(".proto-deps/buf/validate/validate.proto", "utf8");
    const registry = createRegistry(file_buf_validate_validate, file_google_protobuf_descriptor);
    expect(written).toContain(printFileDescriptor(file_buf_validate_validate, registry));
  });
});
