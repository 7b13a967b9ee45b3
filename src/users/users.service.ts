import type { ResultCodec } from "../db/idempotency.repository.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import { expectedVersion } from "../shared/etag.js";
import { InvalidArgumentError } from "../shared/errors.js";
import type { PageTokens } from "../shared/page-token.js";
import { effectivePageSize, type Page, type PageRequest, toPage } from "../shared/pagination.js";
import { requestHash } from "../shared/request-hash.js";
import type { Scope } from "../shared/scope.js";
import type { NewUser, User, UserPatch } from "./user.js";

/** The users use cases; each runs in one unit of work. */
export class UsersService {
  readonly #uow: UnitOfWork;
  readonly #pageTokens: PageTokens;

  constructor(uow: UnitOfWork, pageTokens: PageTokens) {
    this.#uow = uow;
    this.#pageTokens = pageTokens;
  }

  get(scope: Scope, id: string): Promise<User> {
    return this.#uow.transact(scope, (tx) => tx.users.get(id));
  }

  async list(scope: Scope, page: PageRequest): Promise<Page<User>> {
    const limit = effectivePageSize(page.pageSize);
    const binding = `${scope.tenant}\0users`;
    const after = page.pageToken ? this.#pageTokens.decode(binding, page.pageToken) : undefined;
    const keyset = after === undefined ? undefined : userKeyset(after);
    const rows = await this.#uow.transact(scope, (tx) => tx.users.list(limit + 1, keyset));
    return toPage(rows, limit, (last) =>
      this.#pageTokens.encode(binding, [last.createTime.toISOString(), last.id]),
    );
  }

  create(scope: Scope, input: NewUser, requestId?: string): Promise<User> {
    const key = requestId
      ? { requestId, operation: "users.create", requestHash: requestHash(input) }
      : undefined;
    return this.#uow.transact(scope, (tx) => tx.idempotency.run(key, userCodec, () => tx.users.create(input)));
  }

  update(scope: Scope, id: string, patch: UserPatch, etag?: string): Promise<User> {
    if (Object.keys(patch).length === 0) {
      throw InvalidArgumentError.field("update_mask", "must name at least one field");
    }
    const version = expectedVersion(etag);
    return this.#uow.transact(scope, (tx) => tx.users.update(id, patch, version));
  }

  delete(scope: Scope, id: string, etag?: string): Promise<void> {
    const version = expectedVersion(etag);
    return this.#uow.transact(scope, (tx) => tx.users.delete(id, version));
  }
}

/** Checks a decoded keyset; the MAC already proved we issued it, this guards the types. */
function userKeyset(values: readonly (string | number)[]): readonly [string, string] {
  const [time, id] = values;
  if (values.length !== 2 || typeof time !== "string" || typeof id !== "string" || Number.isNaN(Date.parse(time))) {
    throw InvalidArgumentError.field("page_token", "is malformed");
  }
  return [time, id];
}

/** Stores a created user for idempotent replay (dates as ISO strings). */
const userCodec: ResultCodec<User> = {
  toJson: (u) => ({ ...u, createTime: u.createTime.toISOString(), updateTime: u.updateTime.toISOString() }),
  fromJson: (json) => {
    const u = json as User & { createTime: string; updateTime: string };
    return { ...u, createTime: new Date(u.createTime), updateTime: new Date(u.updateTime) };
  },
};
