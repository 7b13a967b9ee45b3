import type { CompiledQuery, Kysely } from "kysely";
import { runCompiled } from "../db/compiled-once.js";
import type { Tier } from "../auth/principal.js";
import type { Database } from "../db/schema.js";

/** What authentication needs to know of a key. */
export interface StoredApiKey {
  readonly id: string;
  readonly tenant: string;
  readonly displayName: string;
  readonly roles: readonly string[];
  readonly tier: Tier;
  readonly revoked: boolean;
  readonly expireTime: Date | null;
  readonly secretHash: Buffer;
}

/**
 * The queries authentication runs on `api_keys`, straight on the pool and
 * across tenants: a presented secret names its key by id before anyone
 * knows the tenant (ids are unique across tenants). Nothing else may read
 * keys unscoped; management goes through ApiKeyRepository.
 */
export class ApiKeyCredentialRepository {
  readonly #db: Kysely<Database>;
  readonly #find: CompiledQuery<Record<string, unknown>>;
  readonly #touch: CompiledQuery;

  constructor(db: Kysely<Database>) {
    this.#db = db;
    // Compiled once: these run for every cache miss and every minute of use.
    this.#find = db
      .selectFrom("api_keys")
      .select(["id", "tenant_id", "display_name", "roles", "tier", "state", "expire_time", "secret_hash"])
      .where("id", "=", "00000000-0000-0000-0000-000000000000")
      .compile();
    this.#touch = db
      .updateTable("api_keys")
      .set({ last_used_time: new Date(0) })
      .where("id", "=", "00000000-0000-0000-0000-000000000000")
      .compile();
  }

  /** The key with this id, in any tenant, or undefined. */
  async find(id: string): Promise<StoredApiKey | undefined> {
    const { rows } = await runCompiled(this.#db, this.#find, [id]);
    const row = rows[0];
    if (row === undefined) return undefined;
    return {
      id: row.id as string,
      tenant: row.tenant_id as string,
      displayName: row.display_name as string,
      roles: row.roles as string[],
      tier: row.tier as Tier,
      revoked: row.state === "revoked",
      expireTime: (row.expire_time as Date | null) ?? null,
      secretHash: Buffer.from(row.secret_hash as Uint8Array),
    };
  }

  /** Records that the key was used now. */
  async touch(id: string): Promise<void> {
    await runCompiled(this.#db, this.#touch, [new Date(), id]);
  }
}
