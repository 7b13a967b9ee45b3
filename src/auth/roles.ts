/**
 * Roles and the permissions they grant. Methods declare the permission they
 * need in the protos (`anvil.api.v1.permission`, as `<resource>.<action>`);
 * this is the one place that says which role grants what.
 */
export type Role = "admin" | "editor" | "viewer" | "analyzer" | "worker";

// Permissions only admins hold: managing users, and reading the audit log.
const adminOnly = (p: string) => p.startsWith("users.") || p.startsWith("audit.");
// Every role may ask who it is (IdentityService.GetCaller).
const everyone = (p: string) => p === "identity.read";

const grants: Readonly<Record<Role, (permission: string) => boolean>> = {
  // Everything, including user management and the audit log.
  admin: () => true,
  // Read and write every resource but users; manage the API keys it creates.
  editor: (p) => (!adminOnly(p) && /\.(read|write|create)$/.test(p)) || p === "apikeys.manage",
  // Read every resource but users and the audit log.
  viewer: (p) => !adminOnly(p) && p.endsWith(".read"),
  // What CI analyzers need: report findings and read them back.
  analyzer: (p) => p === "findings.read" || p === "findings.create",
  // Remote workers: claim, report on and complete tasks.
  worker: (p) => p === "tasks.work",
};

// Which roles a key holding a role may hand out in its tokens.
const includes: Readonly<Record<Role, readonly Role[]>> = {
  admin: ["admin", "editor", "viewer", "analyzer", "worker"],
  editor: ["editor", "viewer", "analyzer"],
  viewer: ["viewer"],
  analyzer: ["analyzer"],
  worker: ["worker"],
};

export function isRole(name: string): name is Role {
  return Object.hasOwn(grants, name);
}

/** Whether any of `roles` grants `permission`. Unknown role names grant nothing. */
export function rolesGrant(roles: readonly string[], permission: string): boolean {
  return roles.some((r) => isRole(r) && (everyone(permission) || grants[r](permission)));
}

/** Whether a key granted `keyRoles` may issue a token claiming `claimed`. */
export function rolesCover(keyRoles: readonly string[], claimed: readonly string[]): boolean {
  return claimed.every((c) => isRole(c) && keyRoles.some((k) => isRole(k) && includes[k].includes(c)));
}
