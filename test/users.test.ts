import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import { type User, UserService, User_State } from "../gen/anvil/users/v1/users_pb.js";
import { describeResource } from "./support/resource-suite.js";

describeResource<typeof UserService, User>({
  name: "user",
  service: UserService,
  writerKey: "acme-admin",
  deniedWriterKeys: ["acme-editor", "acme-viewer"],
  deniedReaderKeys: ["acme-editor", "acme-viewer", "acme-analyzer"],
  create: async (client, seed, requestId) =>
    (await client.createUser({ user: { email: `${seed}@example.com`, displayName: seed, roles: ["viewer"] }, requestId })).user!,
  get: async (client, id) => (await client.getUser({ id })).user!,
  list: async (client, pageSize, pageToken) => {
    const res = await client.listUsers({ pageSize, pageToken });
    return { items: res.users, next: res.nextPageToken };
  },
  update: async (client, user, seed, etag, mask = ["display_name", "state"]) =>
    (
      await client.updateUser({
        user: { id: user.id, displayName: seed, state: User_State.DISABLED, etag: etag ?? "" },
        updateMask: create(FieldMaskSchema, { paths: mask }),
      })
    ).user!,
  isUpdated: (user, seed) => user.displayName === seed && user.state === User_State.DISABLED,
  delete: async (client, id, etag) => {
    await client.deleteUser({ id, etag: etag ?? "" });
  },
  createInvalid: (client) => client.createUser({ user: { email: "not-an-email", roles: [] } }),
  invalidField: "user.email",
  id: (u) => u.id,
  etag: (u) => u.etag,
});
