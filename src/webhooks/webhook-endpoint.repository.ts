import type { CompiledQuery, Kysely } from "kysely";
import { runCompiled } from "../db/compiled-once.js";
import type { Tier } from "../auth/principal.js";
import { translateDatabaseError } from "../db/database-errors.js";
import type { Database } from "../db/schema.js";
import type { WebhookTarget } from "./webhook.js";
import { targetOf } from "./webhook.repository.js";

/** What a delivery needs to know of its endpoint. */
export interface WebhookEndpoint {
  readonly id: string;
  readonly tenant: string;
  readonly target: WebhookTarget;
  readonly signingKey: Buffer;
  /** `kind:id` of the credential deliveries act as, with its roles and tier at creation. */
  readonly creator: string;
  readonly roles: readonly string[];
  readonly tier: Tier;
}

/** The id the statement is compiled with, replaced by the one looked up at each run (runCompiled). */
// Stryker disable next-line StringLiteral: equivalent: any placeholder is replaced before the statement runs
const placeholderId = "00000000-0000-0000-0000-000000000000";

/**
 * The one query deliveries run on `webhooks`, straight on the pool and
 * across tenants: `/hooks/{id}` names its endpoint before anyone knows the
 * tenant (ids are unique across tenants). Management goes through
 * WebhookRepository, always within one tenant.
 */
export class WebhookEndpointRepository {
  readonly #db: Kysely<Database>;
  readonly #find: CompiledQuery<Record<string, unknown>>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
    // Compiled once: it runs for every delivery.
    this.#find = db
      .selectFrom("webhooks")
      .select(["id", "tenant_id", "target_kind", "target_id", "max_results", "signing_key", "creator", "creator_roles", "creator_tier"])
      .where("id", "=", placeholderId)
      .compile();
  }

  /** The endpoint with this id (a UUID), in any tenant, or undefined. */
  async find(id: string): Promise<WebhookEndpoint | undefined> {
    let rows: Record<string, unknown>[];
    try {
      ({ rows } = await runCompiled(this.#db, this.#find, [id]));
    } catch (err) {
      // Outside any unit of work: translated here, so an unreachable database is UNAVAILABLE, not INTERNAL.
      throw translateDatabaseError(err);
    }
    const row = rows[0];
    if (row === undefined) return undefined;
    return {
      id: row.id as string,
      tenant: row.tenant_id as string,
      target: targetOf(row as never),
      signingKey: Buffer.from(row.signing_key as Uint8Array),
      creator: row.creator as string,
      roles: row.creator_roles as string[],
      tier: row.creator_tier as Tier,
    };
  }
}
