import { type DescField, type DescMessage, fromJson, type JsonObject, type JsonReadOptions, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { mapInSlices } from "../shared/time-slices.js";

// Fatal: bytes that are not UTF-8 are the client's mistake (INVALID_ARGUMENT),
// not text to store with U+FFFD in their place. The universal path gets the
// same decoder through the router's jsonOptions (connect-handler.ts).
export const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** How much of a body is decoded between two looks at the clock. */
const partBytes = 64 * 1024;

/** Lists shorter than this are decoded in one go: splitting them would cost more than it spares. */
const longList = 100;

/**
 * Decodes a request body as strict UTF-8, throwing a TypeError for bytes
 * that are not UTF-8. Large bodies are decoded in parts, yielding to the
 * event loop between time slices: decoding 8 MiB of four-byte characters
 * takes the decoder a few hundred milliseconds at once.
 */
export async function decodeUtf8(bytes: Uint8Array): Promise<string> {
  if (bytes.byteLength <= partBytes) return strictUtf8.decode(bytes);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const starts = Array.from({ length: Math.ceil(bytes.byteLength / partBytes) }, (_, i) => i * partBytes);
  // In order, one part after the other: the decoder carries a character split between two parts.
  const parts = await mapInSlices(starts, (start) => {
    const end = Math.min(start + partBytes, bytes.byteLength);
    return decoder.decode(bytes.subarray(start, end), { stream: end < bytes.byteLength });
  });
  return parts.join("");
}

/**
 * `fromJson(desc, json, options)` for requests that may carry a long list of
 * messages (a batch of a thousand findings): the items of the top-level
 * repeated message field are decoded in time slices, yielding to the event
 * loop between them. protobuf-es checks every string it sets, so decoding a
 * batch of large items at once holds the loop for hundreds of milliseconds.
 * The message and the errors are fromJson's; what fromJson refuses at the
 * list itself (a null item, the field named twice) is left to fromJson.
 */
export async function fromJsonInSlices<Desc extends DescMessage>(desc: Desc, json: JsonValue, options?: Partial<JsonReadOptions>): Promise<MessageShape<Desc>> {
  const long = longListOf(desc, json);
  if (long === undefined) return fromJson(desc, json, options);
  const { key, field, items } = long;
  const rest: JsonObject = { ...(json as JsonObject) };
  delete rest[key];
  const message = fromJson(desc, rest, options);
  const itemType = field.message!;
  // An error in an item reads as fromJson's own: it names the innermost field.
  (message as unknown as Record<string, unknown>)[field.localName] = await mapInSlices(items, (item) => fromJson(itemType, item, options));
  return message;
}

/** The top-level repeated message field given as a long list of objects, when there is exactly one such key. */
function longListOf(desc: DescMessage, json: JsonValue): { key: string; field: DescField; items: JsonValue[] } | undefined {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return undefined;
  for (const field of desc.fields) {
    if (field.fieldKind !== "list" || field.listKind !== "message") continue;
    const keys = [field.jsonName, field.name].filter((k, i, all) => all.indexOf(k) === i && Object.hasOwn(json, k));
    if (keys.length !== 1) continue;
    const items = json[keys[0]!];
    if (!Array.isArray(items) || items.length < longList) continue;
    if (items.some((item) => item === null || typeof item !== "object" || Array.isArray(item))) continue;
    return { key: keys[0]!, field, items };
  }
  return undefined;
}
