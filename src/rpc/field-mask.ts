import type { FieldMask } from "@bufbuild/protobuf/wkt";
import { InvalidArgumentError } from "../shared/errors.js";

/** At most this many bad paths are named in an error. */
const maxReportedPaths = 20;

/**
 * Turns an update mask into a domain patch: `paths` maps each updatable
 * field-mask path to the domain field it sets, and `values` gives the new
 * value per domain field. Unknown, immutable and output-only paths are
 * INVALID_ARGUMENT; `*` means every updatable field (AIP-134).
 */
export function patchFromMask<K extends string, V extends Record<K, unknown>>(
  mask: FieldMask | undefined,
  paths: Readonly<Record<string, K>>,
  values: V,
): Partial<Pick<V, K>> {
  const requested = mask?.paths ?? [];
  if (requested.length === 0) throw InvalidArgumentError.field("update_mask", "must name at least one field");
  const names = requested.includes("*") ? Object.keys(paths) : requested;
  const patch: Partial<Pick<V, K>> = {};
  // Distinct and capped: a mask that repeats one bad path thousands of times
  // must not become thousands of violations in the reply.
  const unknown = [...new Set(names.filter((p) => !Object.hasOwn(paths, p)))].slice(0, maxReportedPaths);
  if (unknown.length > 0) {
    throw new InvalidArgumentError(
      `update_mask names fields that cannot be updated: ${unknown.join(", ")}`,
      unknown.map((p) => ({ field: "update_mask", description: `unknown or immutable path "${p}"` })),
    );
  }
  for (const name of names) {
    const key = paths[name] as K;
    patch[key] = values[key];
  }
  return patch;
}
