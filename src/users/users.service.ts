import type { UnitOfWork } from "../db/unit-of-work.js";
import type { KeysetPager } from "../shared/keyset-pager.js";
import { ResourceService } from "../shared/resource-service.js";
import type { NewUser, User, UserPatch } from "./user.js";

/** The users use cases: the standard resource methods, each in one unit of work. */
export class UsersService extends ResourceService<User, NewUser, UserPatch> {
  constructor(uow: UnitOfWork, pager: KeysetPager) {
    super(uow, pager, { name: "users", repository: (tx) => tx.users });
  }
}
