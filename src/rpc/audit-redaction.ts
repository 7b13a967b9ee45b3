import { clone, type DescField, ScalarType, type DescMessage, type JsonObject, type Message, toJson } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";

/**
 * A request's parameters as the audit log keeps them: its proto3 JSON
 * without any field the protos mark secret with the standard
 * `debug_redact = true` option, at any depth (in nested messages, lists and
 * maps of messages). Which fields are secret is read from the descriptors,
 * never listed here.
 *
 * @example
 *   redactedJson(CreateApiKeyResponseSchema, res) // no `secret`
 */
export function redactedJson(schema: DescMessage, message: Message): JsonObject {
  if (!holdsSecrets(schema)) return toJson(schema, message) as JsonObject;
  const copy = clone(schema, message);
  clearSecrets(reflect(schema, copy));
  return toJson(schema, copy) as JsonObject;
}

/** Whether a field is marked `debug_redact`. */
export function isRedacted(field: DescField): boolean {
  return field.proto.options?.debugRedact === true;
}

const secretsIn = new Map<DescMessage, boolean>();

/** Whether a message type has a secret field, itself or in a message it can contain (cached per type). */
export function holdsSecrets(schema: DescMessage, visiting = new Set<DescMessage>()): boolean {
  const known = secretsIn.get(schema);
  if (known !== undefined) return known;
  // A recursive type holds secrets only through its other fields.
  if (visiting.has(schema)) return false;
  visiting.add(schema);
  const found = schema.fields.some((f) => isRedacted(f) || (nestedMessage(f) !== undefined && holdsSecrets(nestedMessage(f)!, visiting)));
  visiting.delete(schema);
  secretsIn.set(schema, found);
  return found;
}

function nestedMessage(field: DescField): DescMessage | undefined {
  if (field.fieldKind === "message") return field.message;
  if (field.fieldKind === "list" && field.listKind === "message") return field.message;
  if (field.fieldKind === "map" && field.mapKind === "message") return field.message;
  return undefined;
}

function clearSecrets(message: ReflectMessage): void {
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    if (isRedacted(field)) {
      message.clear(field);
      continue;
    }
    const nested = nestedMessage(field);
    if (nested === undefined || !holdsSecrets(nested)) continue;
    if (field.fieldKind === "message") clearSecrets(message.get(field));
    else if (field.fieldKind === "list") for (const item of message.get(field)) clearSecrets(item as ReflectMessage);
    else if (field.fieldKind === "map") for (const item of message.get(field).values()) clearSecrets(item as ReflectMessage);
  }
}

/**
 * The resource ids a request names: its string fields `id` and `*_id`
 * (not `request_id`, an idempotency key), also inside its singular message
 * fields (`user.id` of an update).
 */
export function requestResourceIds(schema: DescMessage, message: Message): string[] {
  const ids: string[] = [];
  const r = reflect(schema, message);
  for (const field of r.fields) {
    if (field.fieldKind === "scalar" && isIdField(field) && r.isSet(field)) ids.push(String(r.get(field)));
    if (field.fieldKind === "message" && r.isSet(field)) {
      const inner = r.get(field);
      for (const f of inner.fields) if (f.fieldKind === "scalar" && f.name === "id" && inner.isSet(f)) ids.push(String(inner.get(f)));
    }
  }
  return ids;
}

function isIdField(field: DescField): boolean {
  return field.scalar === ScalarType.STRING && (field.name === "id" || (field.name.endsWith("_id") && field.name !== "request_id"));
}
