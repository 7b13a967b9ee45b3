import type { Transaction } from "kysely";
import { InvalidArgumentError } from "../shared/errors.js";
import type { Database } from "./schema.js";

/** Identifies one idempotent call: the client's request id and what it asked for. */
export interface IdempotencyKey {
  readonly requestId: string;
  /** The use case, e.g. `users.create`. */
  readonly operation: string;
  /** Stable hash of the request's content. */
  readonly requestHash: string;
}

/** How a use case's result is stored for replay. */
export interface ResultCodec<T> {
  toJson(value: T): unknown;
  fromJson(json: unknown): T;
}

/**
 * Makes creates safe to retry. The key row is inserted in the caller's
 * transaction: a concurrent retry blocks on the primary key until the first
 * call commits (then replays its result) or rolls back (then runs itself).
 */
export class IdempotencyRepository {
  constructor(
    readonly trx: Transaction<Database>,
    readonly tenant: string,
  ) {}

  /** Runs `work` once per key; later calls with the key return the stored result. */
  async run<T>(key: IdempotencyKey | undefined, codec: ResultCodec<T>, work: () => Promise<T>): Promise<T> {
    if (key === undefined) return work();
    const claimed = await this.trx
      .insertInto("idempotency_keys")
      .values({
        tenant_id: this.tenant,
        request_id: key.requestId,
        operation: key.operation,
        request_hash: key.requestHash,
      })
      .onConflict((oc) => oc.columns(["tenant_id", "request_id"]).doNothing())
      .returning("request_id")
      .executeTakeFirst();
    if (claimed === undefined) {
      const previous = await this.trx
        .selectFrom("idempotency_keys")
        .select(["operation", "request_hash", "response"])
        .where("tenant_id", "=", this.tenant)
        .where("request_id", "=", key.requestId)
        .executeTakeFirstOrThrow();
      if (previous.operation !== key.operation || previous.request_hash !== key.requestHash) {
        throw InvalidArgumentError.field("request_id", "was already used for a different request");
      }
      return codec.fromJson(previous.response);
    }
    const result = await work();
    await this.trx
      .updateTable("idempotency_keys")
      .set({ response: JSON.stringify(codec.toJson(result)) })
      .where("tenant_id", "=", this.tenant)
      .where("request_id", "=", key.requestId)
      .execute();
    return result;
  }
}

/**
 * A codec for plain domain objects whose only non-JSON values are Dates in
 * the named top-level fields.
 */
export function jsonCodec<T extends object>(...dateFields: ReadonlyArray<keyof T & string>): ResultCodec<T> {
  return {
    toJson: (value) => value,
    fromJson: (json) => {
      const out = { ...(json as Record<string, unknown>) };
      for (const f of dateFields) if (typeof out[f] === "string") out[f] = new Date(out[f] as string);
      return out as T;
    },
  };
}
