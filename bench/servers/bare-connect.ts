import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  CreateUserResponseSchema,
  GetUserResponseSchema,
  ListUsersResponseSchema,
  UserService,
} from "../../gen/anvil/users/v1/users_pb.js";
import { contextFromEnv } from "../protocol/context.js";
import { HealthCheckResponseSchema, HealthService, serving } from "../protocol/health-service.js";
import { listenOnePort } from "./one-port.js";
import { PeerStore } from "./peer-store.js";
import { serve } from "./serve.js";
import { stateFromWire, userMessage } from "./user-message.js";

/**
 * The baseline Anvil is built on: UserService on bare @connectrpc/connect-node
 * (connectNodeAdapter, no interceptors), running the same queries through
 * `pg`. gRPC, gRPC-Web and Connect, HTTP/1.1 and HTTP/2, on one port.
 */
serve("bare-connect", async (port) => {
  const ctx = contextFromEnv();
  const store = await new PeerStore(process.env.DATABASE_URL!, ctx.tenant).open();
  const routes = (router: ConnectRouter) => {
    router.service(UserService, {
      async getUser(req) {
        const row = await store.getUser(req.id);
        if (!row) throw new ConnectError(`user ${req.id} not found`, Code.NotFound);
        return create(GetUserResponseSchema, { user: userMessage(row) });
      },
      async listUsers(req) {
        const page = await store.listUsers(req.pageSize, req.pageToken);
        return create(ListUsersResponseSchema, { users: page.users.map(userMessage), nextPageToken: page.nextPageToken });
      },
      async createUser(req) {
        const u = req.user!;
        const row = await store.createUser(
          { email: u.email, displayName: u.displayName, roles: u.roles, state: stateFromWire(u.state) },
          req.requestId || undefined,
        );
        return create(CreateUserResponseSchema, { user: userMessage(row) });
      },
    });
    router.service(HealthService, { check: () => create(HealthCheckResponseSchema, { status: serving } as never) } as never);
  };
  const server = await listenOnePort(connectNodeAdapter({ routes }), port);
  return {
    close: async () => {
      await server.close();
      await store.close();
    },
  };
});
