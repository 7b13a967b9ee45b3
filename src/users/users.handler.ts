import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type User as UserMessage, UserSchema, UserService, User_State } from "../../gen/anvil/users/v1/users_pb.js";
import { patchFromMask } from "../rpc/field-mask.js";
import { type ResourceMessages, resourceMethods } from "../rpc/resource-methods.js";
import { etagOf } from "../shared/etag.js";
import { InvalidArgumentError } from "../shared/errors.js";
import { type NewUser, updatableUserFields, type User, type UserPatch, type UserState } from "./user.js";
import type { UsersService } from "./users.service.js";

/** UserService over the wire: the standard methods, converting proto ⇄ domain and nothing else. */
export function usersHandler(users: UsersService): ServiceImpl<typeof UserService> {
  return resourceMethods(UserService, users, userMessages);
}

const userMessages: ResourceMessages<User, NewUser, UserPatch, UserMessage> = {
  schema: UserSchema,
  toMessage,
  toNew: (m) => ({
    email: m.email,
    displayName: m.displayName,
    roles: m.roles,
    state: stateFromMessage(m.state) ?? "active",
  }),
  toPatch: (sent, mask) => {
    const patch = patchFromMask(mask, updatableUserFields, {
      email: sent.email,
      displayName: sent.displayName,
      roles: sent.roles,
      state: stateFromMessage(sent.state),
    });
    if ("state" in patch && patch.state === undefined) {
      throw InvalidArgumentError.field("user.state", "must be STATE_ACTIVE or STATE_DISABLED");
    }
    return patch;
  },
};

/** The domain state, or undefined for STATE_UNSPECIFIED. */
function stateFromMessage(state: User_State): UserState | undefined {
  if (state === User_State.ACTIVE) return "active";
  if (state === User_State.DISABLED) return "disabled";
  return undefined;
}

function toMessage(user: User): UserMessage {
  return create(UserSchema, {
    id: user.id,
    email: user.email,
    displayName: user.displayName,
    roles: [...user.roles],
    state: user.state === "active" ? User_State.ACTIVE : User_State.DISABLED,
    etag: etagOf(user.version),
    createTime: timestampFromDate(user.createTime),
    updateTime: timestampFromDate(user.updateTime),
  });
}
