// The users' SQL (src/users/user.repository.ts) straight over a real
// database: what a user is stored and read back as, which fields a patch
// changes, the tenant's case-insensitive e-mail uniqueness, versions and
// pages, with another tenant's identical users beside the caller's. The
// end-to-end suite reaches these through UserService, one gateway start per
// suite.
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { NewUser, User } from "../src/users/user.js";
import { UserRepository } from "../src/users/user.repository.js";
import { AlreadyExistsError, NotFoundError } from "../src/shared/errors.js";
import { databaseKinds } from "./support/databases.js";
import { migratedDatabase } from "./support/migrated-database.js";
import { expectOldestFirstPages, expectVersionedWrites, failure, newTenant, twinCreator, twinOf } from "./support/tenant-twins.js";

const newUser = (over: Partial<NewUser> = {}): NewUser => ({
  email: `${randomUUID().slice(0, 8)}@example.com`,
  displayName: "Ada",
  roles: ["viewer", "editor"],
  state: "active",
  ...over,
});

describe.each(databaseKinds)("user statements on %s", (kind) => {
  const suite = migratedDatabase(kind);

  const users = <T>(tenant: string, work: (u: UserRepository) => Promise<T>): Promise<T> =>
    suite.db.transaction().execute((trx) => work(new UserRepository(trx, tenant)));
  /** Creates `input` in `tenant` and the same in its twin tenant, which nothing done in `tenant` may touch. */
  const twin = twinCreator(users, (u, input: NewUser) => u.create(input));
  /** The other tenant's user as stored now: compared before and after, it shows it was left alone. */
  const otherNow = (tenant: string, user: User) => users(twinOf(tenant), (u) => u.get(user.id));

  it("creates a user with every field as given, at version 1, and gets it in its tenant only", async () => {
    const tenant = newTenant();
    const input = newUser({ email: "Ada@Example.com", displayName: "Ada L", roles: ["admin"], state: "disabled" });
    const { mine, other } = await twin(tenant, input);
    expect(mine).toMatchObject({ email: "Ada@Example.com", displayName: "Ada L", roles: ["admin"], state: "disabled", version: 1 });
    expect(mine.createTime).toBeInstanceOf(Date);
    expect(mine.updateTime).toBeInstanceOf(Date);
    expect(Object.keys(mine).sort()).toEqual(["createTime", "displayName", "email", "id", "roles", "state", "updateTime", "version"]);
    expect(await users(tenant, (u) => u.get(mine.id))).toEqual(mine);
    expect(other.id).not.toBe(mine.id);
    const elsewhere = await failure(users(twinOf(tenant), (u) => u.get(mine.id)));
    expect(elsewhere).toBeInstanceOf(NotFoundError);
    expect(elsewhere).toMatchObject({ resource: "user", id: mine.id });
  });

  it("refuses a second user with the same e-mail in any case as ALREADY_EXISTS naming the field, on create and update, in the tenant only", async () => {
    const tenant = newTenant();
    const { mine } = await twin(tenant, newUser({ email: "dup@example.com" }));
    const created = await failure(users(tenant, (u) => u.create(newUser({ email: "DUP@example.com" }))));
    expect(created).toBeInstanceOf(AlreadyExistsError);
    expect(created).toMatchObject({ resource: "user", field: "email" });
    const second = await users(tenant, (u) => u.create(newUser({ email: "second@example.com" })));
    const updated = await failure(users(tenant, (u) => u.update(second.id, { email: "Dup@Example.com" }, undefined)));
    expect(updated).toMatchObject({ resource: "user", field: "email" });
    expect(await users(tenant, (u) => u.get(second.id))).toMatchObject({ email: "second@example.com", version: 1 });
    // Errors other than the e-mail clash pass through as they are.
    const missing = await failure(users(tenant, (u) => u.update(randomUUID(), { email: "free@example.com" }, undefined)));
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(await users(tenant, (u) => u.get(mine.id))).toEqual(mine);
  });

  it("updates each field on its own, leaving the others and the other tenant's user as they were, bumping the version", async () => {
    const tenant = newTenant();
    const { mine, other } = await twin(tenant, newUser({ displayName: "Before", roles: ["viewer"], state: "active" }));
    const steps: Array<[Parameters<UserRepository["update"]>[1], Partial<User>]> = [
      [{ email: "after@example.com" }, { email: "after@example.com" }],
      [{ displayName: "After" }, { displayName: "After" }],
      [{ roles: ["admin", "viewer"] }, { roles: ["admin", "viewer"] }],
      [{ roles: [] }, { roles: [] }],
      [{ state: "disabled" }, { state: "disabled" }],
      [{}, {}],
    ];
    let expected: User = mine;
    for (const [i, [patch, changed]] of steps.entries()) {
      const updated = await users(tenant, (u) => u.update(mine.id, patch, undefined));
      expected = { ...expected, ...changed, version: i + 2, updateTime: updated.updateTime };
      expect(updated).toEqual(expected);
      expect(await users(tenant, (u) => u.get(mine.id))).toEqual(expected);
    }
    expect(await otherNow(tenant, other)).toEqual(other);
  });

  it("updates and deletes at the expected version only: ABORTED when stale, NOT_FOUND in another tenant", async () => {
    const tenant = newTenant();
    const { mine, other } = await twin(tenant, newUser());
    await expectVersionedWrites(users, tenant, mine, "user");
    expect(await otherNow(tenant, other)).toEqual(other);
  });

  it("lists the tenant's users oldest first, the id breaking ties, in pages after a keyset position", async () => {
    const tenant = newTenant();
    const [a, b, c] = [(await twin(tenant, newUser())).mine, (await twin(tenant, newUser())).mine, (await twin(tenant, newUser())).mine];
    await expectOldestFirstPages(suite.db, "users", users, tenant, [a!, b!, c!]);
  });
});
