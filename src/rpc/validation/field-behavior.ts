import { type DescField, type DescMessage, getOption, hasOption } from "@bufbuild/protobuf";
import { FieldBehavior, field_behavior } from "../../../gen/google/api/field_behavior_pb.js";

/**
 * What `google.api.field_behavior` (AIP-203) and `update_mask` (AIP-134)
 * mean for validation, which protovalidate does not know about: it checks a
 * message as a whole, while a request that carries a resource checks only
 * what the client actually gives.
 *
 * - `OUTPUT_ONLY` fields are the server's to set: whatever a client sends is
 *   ignored, so no rule on them is reported.
 * - The resource's `IDENTIFIER` field (its direct field, one level below the
 *   request) is assigned by the server on create: ignored there. On an
 *   update it names the resource, so it is required.
 * - On an update (a request with `update_mask`), only the resource's fields
 *   named by the mask are checked.
 */
export interface FieldBehaviorScope {
  /** Whether a violation at this field path (request field first) is in scope. */
  inScope(path: readonly DescField[], message: object): boolean;
  /** Identifier fields an update leaves empty, as [resource field, identifier field]. */
  missingIdentifiers(message: object): [DescField, DescField][];
}

export function behaviors(field: DescField): readonly FieldBehavior[] {
  return hasOption(field, field_behavior) ? getOption(field, field_behavior) : [];
}

export function compileFieldBehaviorScope(desc: DescMessage): FieldBehaviorScope {
  const maskField = desc.fields.find((f) => f.name === "update_mask" && f.message?.typeName === "google.protobuf.FieldMask");
  const outputOnly = new WeakSet<DescField>();
  const identifier = new WeakSet<DescField>();
  const seen = new Set<string>();
  const visit = (m: DescMessage): void => {
    if (seen.has(m.typeName)) return;
    seen.add(m.typeName);
    for (const f of m.fields) {
      const b = behaviors(f);
      if (b.includes(FieldBehavior.OUTPUT_ONLY)) outputOnly.add(f);
      if (b.includes(FieldBehavior.IDENTIFIER)) identifier.add(f);
      if (f.message) visit(f.message);
    }
  };
  visit(desc);
  // Resources: the request's singular message fields (other than the mask).
  const resources = desc.fields.filter((f) => f !== maskField).flatMap((f) => (f.fieldKind === "message" ? [f] : []));
  const resourceIds = resources.flatMap((r) => r.message.fields.filter((f) => identifier.has(f)).map((id): [DescField, DescField] => [r, id]));

  // Once per request, not once per violation: a request with thousands of
  // violations and a mask of thousands of paths multiplied the two.
  const maskSets = new WeakMap<object, ReadonlySet<string>>();
  const maskPaths = (message: object): ReadonlySet<string> => {
    let set = maskSets.get(message);
    if (!set) {
      const mask = (message as Record<string, { paths?: string[] } | undefined>)[maskField!.localName];
      set = new Set((mask?.paths ?? []).map((p) => p.split(".")[0] as string));
      maskSets.set(message, set);
    }
    return set;
  };

  return {
    inScope(path, message) {
      if (path.some((f) => outputOnly.has(f))) return false;
      const [top, second] = path;
      if (!top || !second || top.fieldKind !== "message" || top === maskField) return true;
      if (!maskField) return !identifier.has(second); // create: the server assigns the identifier
      if (identifier.has(second)) return true;
      const mask = maskPaths(message);
      return mask.has(second.name) || mask.has("*");
    },
    missingIdentifiers(message) {
      if (!maskField) return [];
      const m = message as Record<string, Record<string, unknown> | undefined>;
      return resourceIds.filter(([r, id]) => {
        const resource = m[r.localName];
        return resource !== undefined && (resource[id.localName] === "" || resource[id.localName] === undefined);
      });
    },
  };
}
