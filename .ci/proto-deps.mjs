// Copies the third-party protos Anvil imports from the `google-proto-files`
// npm package into .proto-deps/ (git-ignored), where buf.yaml finds them.
// No schema registry is reachable from our machines, so this replaces a
// `deps:` entry in buf.yaml.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const files = [
  "google/api/annotations.proto",
  "google/api/http.proto",
  "google/api/field_behavior.proto",
  "google/rpc/code.proto",
  "google/rpc/status.proto",
  "google/rpc/error_details.proto",
];
const root = dirname(createRequire(import.meta.url).resolve("google-proto-files/package.json"));
const out = ".proto-deps";
rmSync(out, { recursive: true, force: true });
for (const f of files) {
  mkdirSync(dirname(join(out, f)), { recursive: true });
  cpSync(join(root, f), join(out, f));
}

// gRPC's reflection and health protos, from the npm packages that ship them,
// copied to their canonical import paths (grpc-health-check keeps health.proto
// under health/v1/, but clients and descriptors expect grpc/health/v1/).
const packageRoot = (name) => dirname(createRequire(import.meta.url).resolve(`${name}/package.json`));
const grpcFiles = [
  ["@grpc/reflection", "build/proto/grpc/reflection/v1/reflection.proto", "grpc/reflection/v1/reflection.proto"],
  ["@grpc/reflection", "build/proto/grpc/reflection/v1alpha/reflection.proto", "grpc/reflection/v1alpha/reflection.proto"],
  ["grpc-health-check", "proto/health/v1/health.proto", "grpc/health/v1/health.proto"],
];
for (const [pkg, from, to] of grpcFiles) {
  mkdirSync(dirname(join(out, to)), { recursive: true });
  cpSync(join(packageRoot(pkg), from), join(out, to));
}

// buf/validate/validate.proto, printed from the descriptor that
// @bufbuild/protovalidate embeds (the package ships no .proto source, and the
// Buf Schema Registry that hosts it is unreachable). Same version as the
// validator that enforces the rules at run time, by construction.
const { printFileDescriptor } = await import("./descriptor-to-proto.mjs");
const { createRegistry } = await import("@bufbuild/protobuf");
const wkt = await import("@bufbuild/protobuf/wkt");
const { file_buf_validate_validate: validateFile } = await import("@bufbuild/protovalidate/gen/buf/validate/validate_pb.js");
// The package exports no package.json; its main entry is <root>/dist/cjs/index.js.
const protovalidateRoot = join(dirname(createRequire(import.meta.url).resolve("@bufbuild/protovalidate")), "../..");
const protovalidateVersion = JSON.parse(readFileSync(join(protovalidateRoot, "package.json"), "utf8")).version;
const registry = createRegistry(validateFile, wkt.file_google_protobuf_descriptor);
const validateProto = printFileDescriptor(validateFile, registry, [
  "Copyright Buf Technologies, Inc. Licensed under the Apache License, Version 2.0 (as @bufbuild/protovalidate).",
  `Printed by .ci/descriptor-to-proto.mjs from the descriptor embedded in @bufbuild/protovalidate ${protovalidateVersion}.`,
  "Do not edit: `npm run proto:deps` rewrites it.",
]);
mkdirSync(join(out, "buf/validate"), { recursive: true });
writeFileSync(join(out, "buf/validate/validate.proto"), validateProto);
