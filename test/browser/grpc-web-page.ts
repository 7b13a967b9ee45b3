// The page of test/grpc-web-text.test.ts, bundled by esbuild: Google's
// `grpc-web` client in its default text mode, with method descriptors made
// by hand (protoc-gen-grpc-web cannot be installed) that serialize with
// protobuf-es.
import { type DescMessage, fromBinary, type MessageShape, toBinary, toJson } from "@bufbuild/protobuf";
import { GrpcWebClientBase, MethodDescriptor, type RpcError } from "grpc-web";
import { OperationService } from "../../gen/anvil/operations/v1/operations_pb.js";

/** A grpc-web MethodDescriptor for a protobuf-es method: protobuf-es does the (de)serializing. */
function descriptor<I extends DescMessage, O extends DescMessage>(method: { parent: { typeName: string }; name: string; input: I; output: O }, kind: "unary" | "server_streaming") {
  class Req {}
  class Res {}
  return new MethodDescriptor<MessageShape<I>, MessageShape<O>>(
    `/${method.parent.typeName}/${method.name}`,
    kind,
    Req as never,
    Res as never,
    (req: MessageShape<I>) => toBinary(method.input, req),
    (bytes: Uint8Array) => fromBinary(method.output, bytes),
  );
}

const getOperation = descriptor(OperationService.method.getOperation, "unary");
const watchOperation = descriptor(OperationService.method.watchOperation, "server_streaming");

/** What the test reads back from the page. */
interface Outcome {
  ok?: unknown;
  error?: { code: number; message: string };
}

const client = new GrpcWebClientBase({ format: "text" });

declare global {
  interface Window {
    getOperation(baseUrl: string, token: string, id: string): Promise<Outcome>;
    watchOperation(baseUrl: string, token: string, id: string, afterSequence: number): Promise<{ messages: unknown[]; error?: { code: number; message: string } }>;
    ready: boolean;
  }
}

window.getOperation = async (baseUrl, token, id) => {
  const request = { $typeName: "anvil.operations.v1.GetOperationRequest", id } as MessageShape<typeof OperationService.method.getOperation.input>;
  try {
    const res = await client.unaryCall(`${baseUrl}${getOperation.getName()}`, request, { authorization: `Bearer ${token}` }, getOperation);
    return { ok: toJson(OperationService.method.getOperation.output, res) };
  } catch (err) {
    const e = err as RpcError;
    return { error: { code: e.code, message: e.message } };
  }
};

window.watchOperation = (baseUrl, token, id, afterSequence) =>
  new Promise((resolve) => {
    const request = { $typeName: "anvil.operations.v1.WatchOperationRequest", id, afterSequence: BigInt(afterSequence) } as MessageShape<typeof OperationService.method.watchOperation.input>;
    const messages: unknown[] = [];
    const stream = client.serverStreaming(`${baseUrl}${watchOperation.getName()}`, request, { authorization: `Bearer ${token}` }, watchOperation);
    stream.on("data", (m) => messages.push(toJson(OperationService.method.watchOperation.output, m)));
    stream.on("error", (e) => resolve({ messages, error: { code: e.code, message: e.message } }));
    stream.on("end", () => resolve({ messages }));
  });

window.ready = true;
