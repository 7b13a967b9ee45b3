import { credentialName, isTier, type Tier } from "../auth/principal.js";
import { isRole, rolesCover, rolesGrant } from "../auth/roles.js";
import type { ResultCodec } from "../db/idempotency.repository.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import { InvalidArgumentError, PermissionDeniedError } from "../shared/errors.js";
import type { KeysetPager } from "../shared/keyset-pager.js";
import { ResourceService } from "../shared/resource-service.js";
import type { Caller } from "../shared/scope.js";
import { type ApiKey, type ApiKeyPatch, defaultApiKeyTier, type NewApiKey } from "./api-key.js";

/** The permission that lets a caller manage every key of its tenant, not only its own (admins). */
export const manageAllKeys = "apikeys.manage_all";

/**
 * The API key use cases. Admins create keys with any roles and manage all
 * of the tenant's keys; editors create keys with roles within their own and
 * see, revoke and delete only the keys they created. A create answers with
 * the secret; its stored replay never holds it.
 */
export class ApiKeysService extends ResourceService<ApiKey, NewApiKey, ApiKeyPatch, Caller> {
  /** `tenantTiers`: each tenant's default tier for keys created without one (ANVIL_TENANT_TIERS); others get `free`. */
  constructor(uow: UnitOfWork, pager: KeysetPager, tenantTiers: ReadonlyMap<string, Tier> = new Map()) {
    const defaultTier = (tenant: string) => tenantTiers.get(tenant) ?? defaultApiKeyTier;
    super(uow, pager, {
      name: "api_keys",
      repository: (tx, caller) =>
        tx.apiKeys.managedBy({
          credential: credentialName(caller.credential),
          ownOnly: !rolesGrant(caller.roles, manageAllKeys),
          defaultTier: defaultTier(caller.tenant),
        }),
      checkNew: (input, caller) => checkNewKey(input, caller, defaultTier(caller.tenant)),
      replayCodec: withoutSecret,
    });
  }

  /** Revokes a key on every instance; revoking a revoked key returns it unchanged. */
  revoke(caller: Caller, id: string, etag?: string): Promise<ApiKey> {
    return this.update(caller, id, { state: "revoked" }, etag);
  }
}

const maxExpireTime = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

function checkNewKey(input: NewApiKey, caller: Caller, defaultTier: Tier): void {
  if (input.roles.length === 0) throw InvalidArgumentError.field("api_key.roles", "must name at least one role");
  const unknown = input.roles.find((r) => !isRole(r));
  if (unknown !== undefined) throw InvalidArgumentError.field("api_key.roles", `${unknown} is not a role`);
  if (input.tier !== undefined && !isTier(input.tier)) {
    throw InvalidArgumentError.field("api_key.tier", "must be free, pro, enterprise or unlimited");
  }
  if (input.expireTime !== null) {
    const at = input.expireTime.getTime();
    // Past year 9999 a timestamp no longer fits the column (nor RFC 3339).
    if (Number.isNaN(at) || at > maxExpireTime) throw InvalidArgumentError.field("api_key.expire_time", "must be before year 10000");
    if (at <= Date.now()) throw InvalidArgumentError.field("api_key.expire_time", "must be in the future");
  }
  if (!rolesCover(caller.roles, input.roles)) {
    throw new PermissionDeniedError("an API key cannot hold roles beyond its creator's");
  }
  if (input.tier !== undefined && input.tier !== defaultTier && !rolesGrant(caller.roles, manageAllKeys)) {
    throw new PermissionDeniedError("only admins set an API key's tier");
  }
}

/** Stores a created key for replays without its secret, so a retry never shows it. */
const withoutSecret: ResultCodec<ApiKey> = {
  toJson: ({ secret: _secret, ...key }) => key,
  fromJson: (json) => {
    const key = json as Record<string, unknown>;
    const date = (v: unknown) => (typeof v === "string" ? new Date(v) : null);
    return { ...key, createTime: date(key.createTime), updateTime: date(key.updateTime), expireTime: date(key.expireTime), lastUsedTime: date(key.lastUsedTime) } as unknown as ApiKey;
  },
};
