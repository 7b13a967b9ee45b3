import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type CreateUserRequest,
  type CreateUserResponse,
  CreateUserResponseSchema,
  type DeleteUserRequest,
  type DeleteUserResponse,
  DeleteUserResponseSchema,
  type GetUserRequest,
  type GetUserResponse,
  GetUserResponseSchema,
  type ListUsersRequest,
  type ListUsersResponse,
  ListUsersResponseSchema,
  type UpdateUserRequest,
  type UpdateUserResponse,
  UpdateUserResponseSchema,
  type User as UserMessage,
  UserSchema,
  type UserService,
  User_State,
} from "../../gen/anvil/users/v1/users_pb.js";
import { patchFromMask } from "../rpc/field-mask.js";
import { requestContext } from "../rpc/request-context.js";
import { etagOf } from "../shared/etag.js";
import { InvalidArgumentError } from "../shared/errors.js";
import { type NewUser, updatableUserFields, type User, type UserState } from "./user.js";
import type { UsersService } from "./users.service.js";

/** UserService over the wire: converts proto ⇄ domain and nothing else. */
export class UsersHandler implements ServiceImpl<typeof UserService> {
  readonly #users: UsersService;

  constructor(users: UsersService) {
    this.#users = users;
  }

  async getUser(req: GetUserRequest, ctx: HandlerContext): Promise<GetUserResponse> {
    const user = await this.#users.get(requestContext(ctx), req.id);
    return create(GetUserResponseSchema, { user: toMessage(user) });
  }

  async listUsers(req: ListUsersRequest, ctx: HandlerContext): Promise<ListUsersResponse> {
    const page = await this.#users.list(requestContext(ctx), { pageSize: req.pageSize, pageToken: req.pageToken });
    return create(ListUsersResponseSchema, { users: page.items.map(toMessage), nextPageToken: page.nextPageToken });
  }

  async createUser(req: CreateUserRequest, ctx: HandlerContext): Promise<CreateUserResponse> {
    const user = await this.#users.create(requestContext(ctx), newUser(req.user!), req.requestId || undefined);
    return create(CreateUserResponseSchema, { user: toMessage(user) });
  }

  async updateUser(req: UpdateUserRequest, ctx: HandlerContext): Promise<UpdateUserResponse> {
    const sent = req.user!;
    const patch = patchFromMask(req.updateMask, updatableUserFields, {
      email: sent.email,
      displayName: sent.displayName,
      roles: sent.roles,
      state: stateFromMessage(sent.state),
    });
    if ("state" in patch && patch.state === undefined) {
      throw InvalidArgumentError.field("user.state", "must be STATE_ACTIVE or STATE_DISABLED");
    }
    const user = await this.#users.update(requestContext(ctx), sent.id, patch, sent.etag || undefined);
    return create(UpdateUserResponseSchema, { user: toMessage(user) });
  }

  async deleteUser(req: DeleteUserRequest, ctx: HandlerContext): Promise<DeleteUserResponse> {
    await this.#users.delete(requestContext(ctx), req.id, req.etag || undefined);
    return create(DeleteUserResponseSchema);
  }
}

function newUser(m: UserMessage): NewUser {
  return {
    email: m.email,
    displayName: m.displayName,
    roles: m.roles,
    state: stateFromMessage(m.state) ?? "active",
  };
}

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
