import { randomUUID } from "node:crypto";
import { type Selectable, sql, type Transaction } from "kysely";
import type { Tier } from "../auth/principal.js";
import { creationOrder } from "../db/creation-order.js";
import type { Database } from "../db/schema.js";
import { ScopedTable } from "../db/scoped-table.js";
import { staleEtag } from "../shared/etag.js";
import { InternalError, NotFoundError } from "../shared/errors.js";
import { type ApiKey, type ApiKeyPatch, defaultApiKeyTier, type NewApiKey, stateAt } from "./api-key.js";
import type { ApiKeyTable } from "./api-key.table.js";
import { newSecret } from "./api-key-secret.js";

/** Channel on which every change that can end a key's validity is announced, payload the key id. */
export const apiKeysChannel = "anvil_api_keys";

/** Who manages keys through a repository: the credential acting, and whether it sees only its own keys. */
export interface KeyManager {
  /** `kind:id` of the acting credential, recorded as a new key's creator. */
  readonly credential: string;
  /** Editors: only keys this credential created exist for it. */
  readonly ownOnly: boolean;
  /** Tier of keys created without one: the tenant's default (ANVIL_TENANT_TIERS), else `free`. */
  readonly defaultTier?: Tier;
}

/**
 * Queries over `api_keys`, within one transaction and one tenant, as seen by
 * one manager. A revocation or deletion announces the key id on
 * `apiKeysChannel` in the same transaction: PostgreSQL delivers it on
 * commit, to every gateway instance, which drop the key from their caches.
 */
export class ApiKeyRepository {
  readonly #trx: Transaction<Database>;
  readonly #table: ScopedTable<"api_keys">;
  readonly #manager: KeyManager | undefined;

  constructor(trx: Transaction<Database>, tenant: string, manager?: KeyManager) {
    this.#trx = trx;
    this.#table = new ScopedTable(trx, tenant, "api_keys", "api key");
    this.#manager = manager;
  }

  /** The same repository, acting for `manager`. */
  managedBy(manager: KeyManager): ApiKeyRepository {
    return new ApiKeyRepository(this.#trx, this.#table.tenant, manager);
  }

  async get(id: string): Promise<ApiKey> {
    // Stryker disable next-line StringLiteral: equivalent: ScopedTable.get locks only for "update" or "share"
    return toApiKey(await this.#visible(id, "none"));
  }

  /** Up to `limit` keys after the keyset position `after` ([create_time, id]). */
  async list(limit: number, after: readonly unknown[] | undefined): Promise<ApiKey[]> {
    const own = this.#manager?.ownOnly === true ? this.#manager.credential : undefined;
    const rows = await this.#table.list(creationOrder, limit, after, own === undefined ? undefined : (q) => q.where("creator", "=", own));
    return rows.map(toApiKey);
  }

  /** Stores a new key and returns it with its secret, the only time the secret exists outside the caller. */
  async create(input: NewApiKey): Promise<ApiKey> {
    if (this.#manager === undefined) throw new InternalError("api key created without a manager");
    const id = randomUUID();
    const { secret, hash } = newSecret(id);
    const row = await this.#table.insert({
      id,
      display_name: input.displayName,
      roles: [...input.roles],
      tier: input.tier ?? this.#manager.defaultTier ?? defaultApiKeyTier,
      state: "active",
      secret_hash: hash,
      creator: this.#manager.credential,
      expire_time: input.expireTime,
    });
    return { ...toApiKey(row), secret };
  }

  /** Revokes the key (a revoked key is returned unchanged), only at `expectedVersion` when one is given. */
  async update(id: string, patch: ApiKeyPatch, expectedVersion: number | undefined): Promise<ApiKey> {
    const row = await this.#visible(id, "update");
    if (expectedVersion !== undefined && row.version !== expectedVersion) throw staleEtag();
    if (row.state === patch.state) return toApiKey(row);
    const updated = await this.#table.update(id, { state: patch.state }, expectedVersion);
    await this.#announce(id);
    return toApiKey(updated);
  }

  async delete(id: string, expectedVersion: number | undefined): Promise<void> {
    // Stryker disable next-line StringLiteral: equivalent: the delete below locks the row in this transaction, and what the read decides (the creator) never changes
    await this.#visible(id, "update");
    await this.#table.delete(id, expectedVersion);
    await this.#announce(id);
  }

  /** The row, or NOT_FOUND when it does not exist or belongs to another creator and the manager sees only its own. */
  async #visible(id: string, lock: "none" | "update"): Promise<Selectable<ApiKeyTable>> {
    const row = await this.#table.get(id, lock);
    if (this.#manager?.ownOnly === true && row.creator !== this.#manager.credential) throw new NotFoundError("api key", id);
    return row;
  }

  async #announce(id: string): Promise<void> {
    await sql`/* apiKeys.announce */ select pg_notify(${apiKeysChannel}, ${id})`.execute(this.#trx);
  }
}

function toApiKey(row: Selectable<ApiKeyTable>): ApiKey {
  return {
    id: row.id,
    displayName: row.display_name,
    roles: row.roles,
    tier: row.tier as Tier,
    state: stateAt(row.state as "active" | "revoked", row.expire_time, Date.now()),
    creator: row.creator,
    expireTime: row.expire_time,
    lastUsedTime: row.last_used_time,
    version: row.version,
    createTime: row.create_time,
    updateTime: row.update_time,
  };
}
