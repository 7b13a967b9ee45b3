import type { Migration } from "kysely";
import * as foundation from "./20261123000000_foundation.js";
import * as users from "./20261123000100_users.js";

/**
 * Every migration, by name; names sort in the order they apply. Listed
 * explicitly (a test checks the list matches the folder) so that the
 * migrator works the same under tsx, vitest and compiled JavaScript.
 */
export const migrations: Record<string, Migration> = {
  "20261123000000_foundation": foundation,
  "20261123000100_users": users,
};
