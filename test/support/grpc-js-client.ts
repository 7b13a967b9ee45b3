import { create, fromBinary, type Message, type MessageInitShape, type MessageShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { UserService } from "../../gen/anvil/users/v1/users_pb.js";

type UserMethods = typeof UserService.method;
/** Local method names of UserService: "getUser", "createUser", … */
export type UserMethodName = keyof UserMethods;
type Input<K extends UserMethodName> = MessageInitShape<UserMethods[K]["input"]>;
type Output<K extends UserMethodName> = MessageShape<UserMethods[K]["output"]>;

/** What a successful unary call returned, with the response headers and trailers. */
export interface GrpcJsResult<O> {
  readonly response: O;
  readonly headers: grpc.Metadata;
  readonly trailers: grpc.Metadata;
}

/**
 * A failed grpc-js call: the status as grpc-js decoded it from the trailers,
 * plus the response headers (empty for a trailers-only response).
 */
export class GrpcJsCallError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    readonly headers: grpc.Metadata,
    readonly trailers: grpc.Metadata,
  ) {
    super(`${grpc.status[code]}: ${details}`);
  }
}

/**
 * The grpc-js service definition of UserService, derived from the generated
 * descriptor rather than a proto-loader parse, so grpc-js serializes with
 * protobuf-es but otherwise shares no code with Anvil's Connect stack: its own
 * HTTP/2 session, framing, status and metadata handling.
 */
function userServiceDefinition(): grpc.ServiceDefinition {
  return Object.fromEntries(
    UserService.methods.map((method): [string, grpc.MethodDefinition<Message, Message>] => [
      method.localName,
      {
        path: `/${UserService.typeName}/${method.name}`,
        requestStream: false,
        responseStream: false,
        requestSerialize: (value) => Buffer.from(toBinary(method.input, value)),
        requestDeserialize: (bytes) => fromBinary(method.input, bytes),
        responseSerialize: (value) => Buffer.from(toBinary(method.output, value)),
        responseDeserialize: (bytes) => fromBinary(method.output, bytes),
      },
    ]),
  );
}

/** The shape of each unary method on a generic grpc-js client. */
type UnaryMethod = (
  request: Message,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: grpc.requestCallback<Message>,
) => grpc.ClientUnaryCall;

const UserServiceClient = grpc.makeGenericClientConstructor(userServiceDefinition(), UserService.name);

/** A grpc-js UserService client over cleartext HTTP/2, with promise-returning unary calls. */
export interface GrpcJsUsers {
  /**
   * Calls `method` with `input`; `metadata` is sent as request headers (the
   * bearer token goes in as `authorization`). Rejects with GrpcJsCallError.
   */
  call<K extends UserMethodName>(method: K, input: Input<K>, metadata?: Record<string, string>): Promise<GrpcJsResult<Output<K>>>;
  close(): void;
}

/** Opens a grpc-js client to `127.0.0.1:<port>` with insecure (cleartext) credentials. */
export function grpcJsUsers(port: number): GrpcJsUsers {
  const client = new UserServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return {
    call: (method, input, metadata = {}) =>
      new Promise((resolve, reject) => {
        const md = new grpc.Metadata();
        for (const [k, v] of Object.entries(metadata)) md.set(k, v);
        const request = create(UserService.method[method].input, input as never);
        let headers = new grpc.Metadata();
        let response: Message | undefined;
        // makeGenericClientConstructor adds one method per definition entry, untyped.
        const rpc = (client as unknown as Record<UserMethodName, UnaryMethod>)[method];
        const call = rpc.call(client, request, md, { deadline: Date.now() + 30_000 }, (err, res) => {
          if (!err) response = res;
        });
        call.on("metadata", (m: grpc.Metadata) => {
          headers = m;
        });
        // The status event comes after the callback and carries the trailers in
        // every case, so both outcomes settle here.
        call.on("status", (s: grpc.StatusObject) => {
          if (s.code === grpc.status.OK) resolve({ response: response as never, headers, trailers: s.metadata });
          else reject(new GrpcJsCallError(s.code, s.details, headers, s.metadata));
        });
      }),
    close: () => client.close(),
  };
}
