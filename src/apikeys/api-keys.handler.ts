import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type ApiKey as ApiKeyMessage,
  ApiKey_State,
  ApiKeySchema,
  ApiKeyService,
  RevokeApiKeyResponseSchema,
} from "../../gen/anvil/apikeys/v1/apikeys_pb.js";
import type { Tier } from "../auth/principal.js";
import { dateOfTimestamp } from "../rpc/timestamps.js";
import { requestContext } from "../rpc/request-context.js";
import { type ResourceMessages, resourceMethods } from "../rpc/resource-methods.js";
import { etagOf } from "../shared/etag.js";
import type { ApiKey, ApiKeyPatch, ApiKeyState, NewApiKey } from "./api-key.js";
import type { ApiKeysService } from "./api-keys.service.js";

/** ApiKeyService over the wire: the standard methods plus RevokeApiKey, converting proto ⇄ domain and nothing else. */
export function apiKeysHandler(keys: ApiKeysService): ServiceImpl<typeof ApiKeyService> {
  return {
    ...resourceMethods(ApiKeyService, keys, apiKeyMessages),
    revokeApiKey: async (req, ctx) =>
      create(RevokeApiKeyResponseSchema, { apiKey: toMessage(await keys.revoke(requestContext(ctx), req.id, req.etag || undefined)) }),
  };
}

const apiKeyMessages: ResourceMessages<ApiKey, NewApiKey, ApiKeyPatch, ApiKeyMessage> = {
  schema: ApiKeySchema,
  toMessage,
  toNew: (m) => ({
    displayName: m.displayName,
    roles: m.roles,
    // Checked by the service, which knows the tiers and who may set one.
    tier: m.tier === "" ? undefined : (m.tier as Tier),
    expireTime: m.expireTime === undefined ? null : dateOfTimestamp(m.expireTime),
  }),
  // The secret travels next to the key, in the create's answer only.
  createdExtras: (key) => ({ secret: key.secret ?? "" }),
};

const states: Record<ApiKeyState, ApiKey_State> = {
  active: ApiKey_State.ACTIVE,
  revoked: ApiKey_State.REVOKED,
  expired: ApiKey_State.EXPIRED,
};

function toMessage(key: ApiKey): ApiKeyMessage {
  return create(ApiKeySchema, {
    id: key.id,
    displayName: key.displayName,
    roles: [...key.roles],
    tier: key.tier,
    state: states[key.state],
    creator: key.creator,
    etag: etagOf(key.version),
    createTime: timestampFromDate(key.createTime),
    updateTime: timestampFromDate(key.updateTime),
    ...(key.expireTime !== null && { expireTime: timestampFromDate(key.expireTime) }),
    ...(key.lastUsedTime !== null && { lastUsedTime: timestampFromDate(key.lastUsedTime) }),
  });
}
