import Fastify from "fastify";
import { contextFromEnv } from "../protocol/context.js";
import { PeerStore } from "./peer-store.js";
import { serve } from "./serve.js";
import { stateFromWire, userJson } from "./user-message.js";

/**
 * The Fastify peer: JSON routes over HTTP/1.1 doing the same queries through
 * `pg`. It answers the Connect JSON paths (so the very same requests hit
 * Anvil and Fastify) and the REST path Anvil's transcoding serves.
 */
serve("fastify", async (port) => {
  const ctx = contextFromEnv();
  const store = await new PeerStore(process.env.DATABASE_URL!, ctx.tenant).open();
  const app = Fastify({ logger: false });
  const users = "/anvil.users.v1.UserService";
  const getUser = async (id: string, reply: { code(n: number): unknown }) => {
    const row = await store.getUser(id);
    if (!row) {
      reply.code(404);
      return { code: "not_found", message: `user ${id} not found` };
    }
    return row;
  };
  app.get("/healthz", async () => ({ status: "ok" }));
  app.post<{ Body: { id: string } }>(`${users}/GetUser`, async (req, reply) => {
    const row = await getUser(req.body.id, reply);
    return "code" in row ? row : { user: userJson(row) };
  });
  app.get<{ Params: { id: string } }>("/v1/users/:id", async (req, reply) => {
    const row = await getUser(req.params.id, reply);
    return "code" in row ? row : userJson(row);
  });
  app.post<{ Body: { pageSize?: number; pageToken?: string } }>(`${users}/ListUsers`, async (req) => {
    const page = await store.listUsers(req.body.pageSize ?? 0, req.body.pageToken ?? "");
    return { users: page.users.map(userJson), nextPageToken: page.nextPageToken };
  });
  app.post<{ Body: { user: { email: string; displayName?: string; roles?: string[]; state?: string }; requestId?: string } }>(
    `${users}/CreateUser`,
    async (req) => {
      const u = req.body.user;
      const row = await store.createUser(
        { email: u.email, displayName: u.displayName ?? "", roles: u.roles ?? [], state: stateFromWire(u.state) },
        req.body.requestId || undefined,
      );
      return { user: userJson(row) };
    },
  );
  await app.listen({ port, host: "127.0.0.1" });
  return {
    close: async () => {
      await app.close();
      await store.close();
    },
  };
});
