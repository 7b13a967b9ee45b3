import { jsonCodec } from "../db/idempotency.repository.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import { expectedVersion } from "../shared/etag.js";
import type { KeysetPager, KeysetQuery } from "../shared/keyset-pager.js";
import type { Page, PageRequest } from "../shared/pagination.js";
import { requestHash } from "../shared/request-hash.js";
import type { Scope } from "../shared/scope.js";
import type { NewUser, User, UserPatch } from "./user.js";

const userCodec = jsonCodec<User>("createTime", "updateTime");

const allUsers: KeysetQuery<User> = {
  query: "users",
  shape: ["timestamp", "uuid"],
  keyOf: (u) => [u.createTime.toISOString(), u.id],
};

/** The users use cases; each runs in one unit of work. */
export class UsersService {
  readonly #uow: UnitOfWork;
  readonly #pager: KeysetPager;

  constructor(uow: UnitOfWork, pager: KeysetPager) {
    this.#uow = uow;
    this.#pager = pager;
  }

  get(scope: Scope, id: string): Promise<User> {
    return this.#uow.read(scope, (tx) => tx.users.get(id));
  }

  list(scope: Scope, page: PageRequest): Promise<Page<User>> {
    return this.#pager.page(scope, page, allUsers, (limit, after) =>
      this.#uow.read(scope, (tx) => tx.users.list(limit, after)),
    );
  }

  create(scope: Scope, input: NewUser, requestId?: string): Promise<User> {
    const key = requestId ? { requestId, operation: "users.create", requestHash: requestHash(input) } : undefined;
    return this.#uow.transact(scope, (tx) => tx.idempotency.run(key, userCodec, () => tx.users.create(input)));
  }

  update(scope: Scope, id: string, patch: UserPatch, etag?: string): Promise<User> {
    const version = expectedVersion(etag);
    return this.#uow.transact(scope, (tx) => tx.users.update(id, patch, version));
  }

  delete(scope: Scope, id: string, etag?: string): Promise<void> {
    const version = expectedVersion(etag);
    return this.#uow.transact(scope, (tx) => tx.users.delete(id, version));
  }
}
