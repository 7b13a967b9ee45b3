import { randomUUID } from "node:crypto";
import pg from "pg";
import { etagOf } from "../../src/shared/etag.js";
import { PageTokens } from "../../src/shared/page-token.js";
import { requestHash } from "../../src/shared/request-hash.js";

/** A row of `users` as the peers hand it to their serializers. */
export interface UserRow {
  id: string;
  email: string;
  display_name: string;
  roles: string[];
  state: string;
  version: number;
  create_time: Date;
  update_time: Date;
  etag: string;
}

/** What a peer's create takes. */
export interface NewUserInput {
  email: string;
  displayName: string;
  roles: string[];
  state: "active" | "disabled";
}

/**
 * The database work of the peer servers, written the way a careful
 * hand-rolled service would: one `pg` pool of the same size as Anvil's, the
 * same SELECT for a point read, the same keyset query and HMAC page tokens
 * (Anvil's own PageTokens, same key) for a list, and for a create the same
 * idempotency-key dance inside one transaction. What the peers skip is what
 * Anvil adds on top: token verification, permissions, validation, logging,
 * and the unit-of-work transaction around reads.
 */
export class PeerStore {
  readonly #pool: pg.Pool;
  readonly #tenant: string;
  #pageTokens: PageTokens | undefined;

  constructor(url: string, tenant: string) {
    this.#pool = new pg.Pool({ connectionString: url, max: Number(process.env.ANVIL_DB_POOL_SIZE ?? 10),
      // All servers stay up through a run; idle peers give their connections back quickly.
      idleTimeoutMillis: 1_000,
    });
    this.#pool.on("error", () => {});
    this.#tenant = tenant;
  }

  /** Reads the page-token key Anvil stores, so tokens are interchangeable. */
  async open(): Promise<this> {
    const { rows } = await this.#pool.query<{ value: string }>("select value from anvil_settings where name = 'page_token_key'");
    this.#pageTokens = new PageTokens(Buffer.from(rows[0]!.value, "utf8"));
    return this;
  }

  async getUser(id: string): Promise<UserRow | undefined> {
    const { rows } = await this.#pool.query("select * from users where tenant_id = $1 and id = $2", [this.#tenant, id]);
    return rows[0] ? withEtag(rows[0]) : undefined;
  }

  async listUsers(pageSize: number, pageToken: string): Promise<{ users: UserRow[]; nextPageToken: string }> {
    const limit = pageSize === 0 ? 50 : Math.min(pageSize, 1000);
    const binding = `${this.#tenant}\0users`;
    const tokens = this.#pageTokens!;
    let rows: UserRow[];
    if (pageToken) {
      const [time, id] = tokens.decode(binding, pageToken) as [string, string];
      ({ rows } = await this.#pool.query(
        // The same keyset condition Anvil's src/db/keyset.ts writes for this order.
        `select * from users where tenant_id = $1 and (create_time, id) > ($2, $3)
         order by create_time asc, id asc limit $4`,
        [this.#tenant, time, id, limit + 1],
      ));
    } else {
      ({ rows } = await this.#pool.query("select * from users where tenant_id = $1 order by create_time asc, id asc limit $2", [
        this.#tenant,
        limit + 1,
      ]));
    }
    const users = rows.slice(0, limit).map(withEtag);
    const last = users[users.length - 1];
    const nextPageToken = rows.length > limit && last ? tokens.encode(binding, [last.create_time.toISOString(), last.id]) : "";
    return { users, nextPageToken };
  }

  async createUser(input: NewUserInput, requestId: string | undefined): Promise<UserRow> {
    const client = await this.#pool.connect();
    try {
      await client.query("begin");
      let claimed = true;
      if (requestId) {
        const r = await client.query(
          `insert into idempotency_keys (tenant_id, request_id, operation, request_hash) values ($1, $2, $3, $4)
           on conflict (tenant_id, request_id) do nothing returning request_id`,
          [this.#tenant, requestId, "users.create", requestHash(input)],
        );
        claimed = r.rowCount === 1;
      }
      if (!claimed) throw new Error("replayed request_id: the bench never sends one twice");
      const { rows } = await client.query(
        `insert into users (tenant_id, id, email, display_name, roles, state) values ($1, $2, $3, $4, $5, $6) returning *`,
        [this.#tenant, randomUUID(), input.email, input.displayName, input.roles, input.state],
      );
      const user = withEtag(rows[0]);
      if (requestId) {
        await client.query("update idempotency_keys set response = $1 where tenant_id = $2 and request_id = $3", [
          JSON.stringify(user),
          this.#tenant,
          requestId,
        ]);
      }
      await client.query("commit");
      return user;
    } catch (err) {
      await client.query("rollback").catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  close(): Promise<void> {
    return this.#pool.end();
  }
}

function withEtag(row: Omit<UserRow, "etag">): UserRow {
  return { ...row, etag: etagOf(row.version) };
}
