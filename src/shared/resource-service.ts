import { creationKeyset } from "../db/creation-order.js";
import { idempotencyKey } from "../db/idempotency-key.js";
import { jsonCodec, type ResultCodec } from "../db/idempotency.repository.js";
import type { Repositories } from "../db/repositories.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import { expectedVersion } from "./etag.js";
import type { KeysetPager, KeysetQuery } from "./keyset-pager.js";
import type { Page, PageRequest } from "./pagination.js";
import type { Scope } from "./scope.js";

/** What every resource's domain object carries (its version, the etag, is the repository's business). */
export interface ResourceRecord {
  readonly id: string;
  readonly createTime: Date;
  readonly updateTime: Date;
}

/** The standard methods of a resource's repository, inside one transaction and one tenant. */
export interface ResourceRepository<T, New, Patch> {
  get(id: string): Promise<T>;
  list(limit: number, after: readonly unknown[] | undefined): Promise<T[]>;
  create(input: New): Promise<T>;
  update(id: string, patch: Patch, expectedVersion: number | undefined): Promise<T>;
  delete(id: string, expectedVersion: number | undefined): Promise<void>;
}

/**
 * What makes one resource itself: its name, its repository and its rules.
 * The hooks run inside the write's transaction, so what they read holds until
 * it commits, and what they throw rolls the write back.
 */
export interface ResourceDefinition<T extends ResourceRecord, New, Patch, S extends Scope = Scope> {
  /** The collection name (`users`): names idempotency keys (`users.create`) and binds page tokens. */
  readonly name: string;
  /**
   * The resource's repository within a transaction, for the caller of
   * `scope` (a resource whose visibility depends on the caller narrows it here).
   */
  repository(tx: Repositories, scope: S): ResourceRepository<T, New, Patch>;
  /** Checks a create's input, and whether the caller may make it, before any transaction starts (throw to refuse). */
  checkNew?(input: New, scope: S): void;
  /**
   * How a create's result is stored for idempotent replays (default: as is,
   * dates revived). A resource returning a secret once drops it here, so a
   * replay never shows it.
   */
  readonly replayCodec?: ResultCodec<T>;
  /** Checks an update's patch before any transaction starts (throw to refuse). */
  checkPatch?(patch: Patch): void;
  /**
   * Runs before an update or delete writes: `change` is the patch, or
   * "delete". For rules that need the current row (locked by the hook).
   */
  beforeChange?(tx: Repositories, id: string, version: number | undefined, change: Patch | "delete", scope: S): Promise<void>;
  /** Runs after an update wrote, holding the row lock. */
  afterUpdate?(tx: Repositories, updated: T, patch: Patch): Promise<void>;
  /** Runs after a delete, holding the row lock. */
  afterDelete?(tx: Repositories, id: string): Promise<void>;
}

/**
 * The standard methods of one resource — get, list with keyset paging,
 * create with idempotent retries, update and delete with etags — written
 * once. A resource's service extends it with its own use cases.
 *
 * @example
 *   export class UsersService extends ResourceService<User, NewUser, UserPatch> {
 *     constructor(uow: UnitOfWork, pager: KeysetPager) {
 *       super(uow, pager, { name: "users", repository: (tx) => tx.users });
 *     }
 *   }
 */
export class ResourceService<T extends ResourceRecord, New, Patch, S extends Scope = Scope> {
  protected readonly uow: UnitOfWork;
  protected readonly pager: KeysetPager;
  readonly #definition: ResourceDefinition<T, New, Patch, S>;
  readonly #codec: ResultCodec<T>;
  readonly #all: KeysetQuery<T>;

  constructor(uow: UnitOfWork, pager: KeysetPager, definition: ResourceDefinition<T, New, Patch, S>) {
    this.uow = uow;
    this.pager = pager;
    this.#definition = definition;
    this.#codec = definition.replayCodec ?? (jsonCodec<ResourceRecord>("createTime", "updateTime") as ResultCodec<T>);
    this.#all = creationKeyset<T>(definition.name);
  }

  get(scope: S, id: string): Promise<T> {
    return this.uow.read(scope, (tx) => this.#definition.repository(tx, scope).get(id));
  }

  list(scope: S, page: PageRequest): Promise<Page<T>> {
    return this.pager.page(scope, page, this.#all, (limit, after) =>
      this.uow.read(scope, (tx) => this.#definition.repository(tx, scope).list(limit, after)),
    );
  }

  /** Creates once per `requestId`: a retry returns the first result; the same id with another input is refused. */
  create(scope: S, input: New, requestId?: string): Promise<T> {
    const d = this.#definition;
    d.checkNew?.(input, scope);
    const key = idempotencyKey(`${d.name}.create`, input, requestId);
    return this.uow.transact(scope, (tx) => tx.idempotency.run(key, this.#codec, () => d.repository(tx, scope).create(input)));
  }

  update(scope: S, id: string, patch: Patch, etag?: string): Promise<T> {
    const d = this.#definition;
    const version = expectedVersion(etag);
    d.checkPatch?.(patch);
    return this.uow.transact(scope, async (tx) => {
      await d.beforeChange?.(tx, id, version, patch, scope);
      const updated = await d.repository(tx, scope).update(id, patch, version);
      await d.afterUpdate?.(tx, updated, patch);
      return updated;
    });
  }

  delete(scope: S, id: string, etag?: string): Promise<void> {
    const d = this.#definition;
    const version = expectedVersion(etag);
    return this.uow.transact(scope, async (tx) => {
      await d.beforeChange?.(tx, id, version, "delete", scope);
      await d.repository(tx, scope).delete(id, version);
      await d.afterDelete?.(tx, id);
    });
  }
}
