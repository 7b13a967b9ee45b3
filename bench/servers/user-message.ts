import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type User, User_State, UserSchema } from "../../gen/anvil/users/v1/users_pb.js";
import type { UserRow } from "./peer-store.js";

/** A row as the protobuf `User` Anvil answers with (same fields, same etag), for the connect-node and grpc-js peers. */
export function userMessage(row: UserRow): User {
  return create(UserSchema, {
    id: row.id,
    email: row.email,
    displayName: row.display_name,
    roles: row.roles,
    state: row.state === "active" ? User_State.ACTIVE : User_State.DISABLED,
    etag: row.etag,
    createTime: timestampFromDate(row.create_time),
    updateTime: timestampFromDate(row.update_time),
  });
}

/** The same user as the JSON a REST service would write by hand (Connect JSON field names), for Fastify. */
export function userJson(row: UserRow) {
  return {
    id: row.id,
    email: row.email,
    displayName: row.display_name,
    roles: row.roles,
    state: row.state === "active" ? "STATE_ACTIVE" : "STATE_DISABLED",
    etag: row.etag,
    createTime: row.create_time.toISOString(),
    updateTime: row.update_time.toISOString(),
  };
}

/** Connect JSON / proto enum names back to the stored state. */
export function stateFromWire(state: unknown): "active" | "disabled" {
  return state === "STATE_DISABLED" || state === User_State.DISABLED ? "disabled" : "active";
}
