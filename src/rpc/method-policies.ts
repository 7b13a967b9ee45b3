import { type DescMethod, type DescService, getOption, hasOption } from "@bufbuild/protobuf";
import { permission as permissionOption } from "../../gen/anvil/api/v1/annotations_pb.js";

/** What the gateway enforces for one method, read from its proto options. */
export interface MethodPolicy {
  /** No token needed (health, and reflection when configured public). */
  readonly public: boolean;
  /** Permission required when not public, e.g. `users.read`. */
  readonly permission: string;
}

/** Policies of every served method, looked up by descriptor identity. */
export type MethodPolicies = ReadonlyMap<DescMethod, MethodPolicy>;

/**
 * Reads the `anvil.api.v1.permission` option of every method of `services`.
 * A method of a non-public service without one stops start-up: an
 * undeclared method must never be served open.
 */
export function readMethodPolicies(
  services: readonly DescService[],
  publicServices: ReadonlySet<string>,
  // Permission of a service whose protos Anvil does not own (gRPC
  // reflection when it needs a token), by service name.
  servicePermissions: ReadonlyMap<string, string> = new Map(),
): MethodPolicies {
  const policies = new Map<DescMethod, MethodPolicy>();
  for (const service of services) {
    const isPublic = publicServices.has(service.typeName);
    for (const method of service.methods) {
      const permission = hasOption(method, permissionOption)
        ? getOption(method, permissionOption)
        : (servicePermissions.get(service.typeName) ?? "");
      if (!isPublic && !/^[a-z][a-z_]*\.[a-z]+$/.test(permission)) {
        throw new Error(`${service.typeName}.${method.name} declares no valid (anvil.api.v1.permission); refusing to serve it`);
      }
      policies.set(method, { public: isPublic, permission });
    }
  }
  return policies;
}

/** Every permission the served methods declare. */
export function declaredPermissions(policies: MethodPolicies): Set<string> {
  return new Set([...policies.values()].filter((p) => !p.public).map((p) => p.permission));
}
