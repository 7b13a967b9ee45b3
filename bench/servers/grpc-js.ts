import { create, type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  CreateUserRequestSchema,
  CreateUserResponseSchema,
  GetUserRequestSchema,
  GetUserResponseSchema,
  ListUsersRequestSchema,
  ListUsersResponseSchema,
} from "../../gen/anvil/users/v1/users_pb.js";
import { contextFromEnv } from "../protocol/context.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema, serving } from "../protocol/health-service.js";
import { PeerStore } from "./peer-store.js";
import { serve } from "./serve.js";
import { stateFromWire, userMessage } from "./user-message.js";

/** A unary grpc-js method definition whose (de)serializers are protobuf-es, so messages are the same objects Anvil uses. */
function unary(path: string, input: DescMessage, output: DescMessage): grpc.MethodDefinition<any, any> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: any) => Buffer.from(toBinary(input, m)),
    requestDeserialize: (b: Buffer) => fromBinary(input, b),
    responseSerialize: (m: any) => Buffer.from(toBinary(output, m)),
    responseDeserialize: (b: Buffer) => fromBinary(output, b),
  };
}

const users = "/anvil.users.v1.UserService";

/**
 * The @grpc/grpc-js peer: a generic service definition (no proto-loader) for
 * UserService plus grpc.health.v1.Health/Check, doing the same queries
 * through `pg` as every other peer.
 */
serve("grpc-js", async (port) => {
  const ctx = contextFromEnv();
  const store = await new PeerStore(process.env.DATABASE_URL!, ctx.tenant).open();
  const server = new grpc.Server();
  const fail = (cb: grpc.sendUnaryData<unknown>, err: unknown) =>
    cb({ code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) } as grpc.ServiceError, null);
  server.addService(
    {
      GetUser: unary(`${users}/GetUser`, GetUserRequestSchema, GetUserResponseSchema),
      ListUsers: unary(`${users}/ListUsers`, ListUsersRequestSchema, ListUsersResponseSchema),
      CreateUser: unary(`${users}/CreateUser`, CreateUserRequestSchema, CreateUserResponseSchema),
    },
    {
      GetUser: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        store.getUser(call.request.id).then((row) => {
          if (!row) return cb({ code: grpc.status.NOT_FOUND, details: "user not found" } as grpc.ServiceError, null);
          cb(null, create(GetUserResponseSchema, { user: userMessage(row) }));
        }, (err) => fail(cb, err));
      },
      ListUsers: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        store.listUsers(call.request.pageSize, call.request.pageToken).then(
          (page) => cb(null, create(ListUsersResponseSchema, { users: page.users.map(userMessage), nextPageToken: page.nextPageToken })),
          (err) => fail(cb, err),
        );
      },
      CreateUser: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        const u = call.request.user;
        store
          .createUser({ email: u.email, displayName: u.displayName, roles: u.roles, state: stateFromWire(u.state) }, call.request.requestId || undefined)
          .then((row) => cb(null, create(CreateUserResponseSchema, { user: userMessage(row) })), (err) => fail(cb, err));
      },
    },
  );
  server.addService(
    { Check: unary("/grpc.health.v1.Health/Check", HealthCheckRequestSchema, HealthCheckResponseSchema) },
    { Check: (_call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => cb(null, create(HealthCheckResponseSchema, { status: serving } as never)) },
  );
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  return {
    close: async () => {
      server.forceShutdown();
      await store.close();
    },
  };
});
