import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { UserService } from "../../gen/anvil/users/v1/users_pb.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import type { KeysetPager } from "../shared/keyset-pager.js";
import { UsersHandler } from "../users/users.handler.js";
import { UsersService } from "../users/users.service.js";

/** What the services are built from. */
export interface ServiceDependencies {
  readonly uow: UnitOfWork;
  readonly pager: KeysetPager;
}

/** Every Anvil API service, in the order it is registered. */
export const apiServices: readonly DescService[] = [UserService];

/**
 * The one routes function: registers every service's handler on the router.
 * Adding a resource means adding its line here and its descriptor above.
 */
export function registerServices(deps: ServiceDependencies): (router: ConnectRouter) => void {
  const users = new UsersHandler(new UsersService(deps.uow, deps.pager));
  return (router) => {
    router.service(UserService, users);
  };
}
