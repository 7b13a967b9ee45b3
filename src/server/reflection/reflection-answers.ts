import { create, type DescFile, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  type ServerReflectionRequest,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import type { DescriptorIndex } from "./descriptor-index.js";

/**
 * Answers one request of a reflection stream. `sent` holds the files already
 * sent on this stream: as grpc-go does, the requested file always comes
 * back, its imports only the first time, since the client keeps them.
 * Unknown names get an error response; the stream stays open.
 */
export function answerReflection(index: DescriptorIndex, request: ServerReflectionRequest, sent: Set<string>): ServerReflectionResponse {
  const reply = (messageResponse: MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"]) =>
    create(ServerReflectionResponseSchema, { validHost: request.host, originalRequest: request, messageResponse });
  const notFound = (what: string) =>
    reply({ case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } });
  const files = (file: DescFile | undefined, what: string) =>
    file ? reply({ case: "fileDescriptorResponse", value: { fileDescriptorProto: serialize(index, file, sent) } }) : notFound(what);
  const { value, case: kind } = request.messageRequest;
  switch (kind) {
    case "listServices":
      return reply({ case: "listServicesResponse", value: { service: index.serviceNames.map((name) => ({ name })) } });
    case "fileByFilename":
      return files(index.file(value), `file ${value}`);
    case "fileContainingSymbol":
      return files(index.fileContainingSymbol(value), `symbol ${value}`);
    case "fileContainingExtension":
      return files(
        index.fileContainingExtension(value.containingType, value.extensionNumber),
        `extension ${value.extensionNumber} of ${value.containingType}`,
      );
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbers(value);
      if (numbers === undefined) return notFound(`type ${value}`);
      return reply({ case: "allExtensionNumbersResponse", value: { baseTypeName: value, extensionNumber: numbers } });
    }
    case undefined:
      return reply({ case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" } });
  }
}

function serialize(index: DescriptorIndex, file: DescFile, sent: Set<string>): Uint8Array[] {
  return index
    .withDependencies(file)
    .filter((f) => f === file || !sent.has(f.proto.name))
    .map((f) => {
      sent.add(f.proto.name);
      return toBinary(FileDescriptorProtoSchema, f.proto);
    });
}
