import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createFileRegistry, type DescService, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { buildOpenApiDocument } from "../server/openapi/openapi-document.js";
import { openApiFile } from "../server/openapi/openapi-route.js";
import { apiServices } from "../server/services.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

/**
 * `npm run generate:openapi` (part of `npm run generate`): writes the
 * OpenAPI 3.1 document of every service in `apiServices` to
 * gen/openapi/anvil.openapi.json, which is committed so API changes show in
 * review diffs, and served at `GET /openapi.json`.
 *
 * Generated code carries descriptors without comments, so this reads the
 * protos through `buf build`, whose image keeps the source info, and looks
 * the served services up in it by name: the routes come from the same
 * annotations the server reads, the descriptions from the proto comments.
 */
function main(): void {
  if (!existsSync(join(root, ".proto-deps"))) throw new Error(".proto-deps/ is missing; run `npm run proto:deps` first");
  const localBuf = join(root, "node_modules", ".bin", "buf");
  const image = execFileSync(existsSync(localBuf) ? localBuf : "buf", ["build", "proto", "-o", "-#format=binpb"], {
    cwd: root,
    maxBuffer: 256 * 1024 * 1024,
  });
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, image));
  const services: DescService[] = apiServices.map((s) => {
    const withComments = registry.getService(s.typeName);
    if (!withComments) throw new Error(`${s.typeName} is served but not found in the protos built by buf`);
    return withComments;
  });
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string; description?: string };
  const document = buildOpenApiDocument(services, { title: "Anvil API", version: pkg.version, description: pkg.description });
  const out = join(root, openApiFile);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(document, null, 2)}\n`);
  process.stdout.write(`wrote ${openApiFile}\n`);
}

try {
  main();
} catch (err) {
  process.stderr.write(`openapi generation failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
