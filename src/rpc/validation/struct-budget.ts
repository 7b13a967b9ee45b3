import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { type FieldViolation, InvalidArgumentError } from "../../shared/errors.js";
import { maxItemsOf } from "./first-pass.js";

/**
 * How much free-form JSON (google.protobuf.Struct, Value and ListValue) one
 * request may carry, in all of its fields together. protobuf-es turns every
 * JSON value into a message of its own, and reading, checking, storing and
 * echoing one costs 5-20 µs (encoding a Struct to binary is the dearest): a
 * 280 KB object of 20,000 keys kept the event loop busy ~300 ms, against a
 * bound of 50 ms + 20 ms per MiB. Bounded per request, not per field, because
 * a list of 200 steps each with a config multiplies any per-field limit.
 * Larger documents belong in a dedicated store, not in an RPC's settings.
 */
export const structLimits = {
  /** Values in all: object members and list items, at any depth. */
  maxValues: 1_000,
  /** Objects and lists nested in one another. */
  maxDepth: 32,
} as const;

/**
 * Lists more than this many times over their `repeated.max_items` are
 * refused before decoding too, as the first pass refuses them after it: 200
 * steps of 5,000 `depends_on` items each (a limit of 200) cost ~200 ms of
 * JSON decoding and ~900 ms of binary decoding before anything looked.
 */
const grossFactor = 2;

/**
 * Checks the free-form JSON of a request, and lists far over their limits,
 * before protobuf-es decodes it, so a
 * document over the limits costs one cheap walk instead of a decode of
 * thousands of messages. `json` is the parsed proto3 JSON of a `desc`
 * message; unknown keys are skipped (the decoder judges them).
 */
export function structBudgetOfJson(desc: DescMessage, json: unknown): FieldViolation | undefined {
  const budget = new Budget();
  try {
    budget.jsonMessage(desc, json, "");
  } catch (e) {
    if (e instanceof OverBudget) return e.violation;
    throw e;
  }
  return undefined;
}

/**
 * Checks the free-form JSON of a binary request before protobuf-es decodes
 * it, reading only tags and lengths and descending only into fields that can
 * hold a Struct. Bytes that do not parse throw BinaryReader's error: the
 * decoder would fail on them too, after building everything before the
 * fault (found by the fuzzer: a truncated 20,000-key Struct, ~85 ms).
 */
export function structBudgetOfBinary(desc: DescMessage, bytes: Uint8Array): FieldViolation | undefined {
  if (!reachesJson(desc)) return undefined;
  const budget = new Budget();
  try {
    budget.binaryMessage(desc, bytes, "");
  } catch (e) {
    if (e instanceof OverBudget) return e.violation;
    throw e;
  }
  return undefined;
}

/** A violation of the limits, for the values of the field at `path`. */
export function structBudgetViolation(path: string, what: "values" | "depth"): FieldViolation {
  return {
    field: path,
    description:
      what === "values"
        ? `free-form JSON must hold at most ${structLimits.maxValues} values per request`
        : `free-form JSON must nest at most ${structLimits.maxDepth} levels`,
  };
}

/** The error for a request over the limits, worded as validation words it. */
export function overBudgetError(violation: FieldViolation): InvalidArgumentError {
  return new InvalidArgumentError(`invalid request: ${violation.field} ${violation.description}`, [violation]);
}

class OverBudget extends Error {
  constructor(readonly violation: FieldViolation) {
    super(violation.description);
  }
}

const jsonTypes = new Set(["google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"]);
const reachCache = new WeakMap<DescMessage, boolean>();

/** Whether a message of this type can hold a Struct, Value or ListValue, or a list with a size limit, somewhere. */
export function reachesJson(desc: DescMessage, visiting = new Set<DescMessage>()): boolean {
  const known = reachCache.get(desc);
  if (known !== undefined) return known;
  if (jsonTypes.has(desc.typeName)) return true;
  if (visiting.has(desc)) return false; // a cycle: the other fields of the types on it decide
  visiting.add(desc);
  const reaches = desc.fields.some((f) => {
    if (f.fieldKind === "list" && maxItemsOf(f) !== undefined) return true;
    const m = fieldMessage(f);
    return m !== undefined && reachesJson(m, visiting);
  });
  visiting.delete(desc);
  if (visiting.size === 0 || reaches) reachCache.set(desc, reaches);
  return reaches;
}

function fieldMessage(f: DescField): DescMessage | undefined {
  if (f.fieldKind === "message") return f.message;
  if (f.fieldKind === "list" && f.listKind === "message") return f.message;
  if (f.fieldKind === "map" && f.mapKind === "message") return f.message;
  return undefined;
}

const jsonNames = new WeakMap<DescMessage, Map<string, DescField>>();

/** A message's fields that can hold JSON or a limited list, by proto name and JSON name. */
function jsonFields(desc: DescMessage): Map<string, DescField> {
  let names = jsonNames.get(desc);
  if (!names) {
    names = new Map();
    for (const f of desc.fields) {
      const m = fieldMessage(f);
      if (maxItemsOf(f) === undefined && (m === undefined || !reachesJson(m))) continue;
      names.set(f.name, f);
      names.set(f.jsonName, f);
    }
    jsonNames.set(desc, names);
  }
  return names;
}

class Budget {
  #values = 0;

  #count(path: string, depth: number): void {
    if (++this.#values > structLimits.maxValues) throw new OverBudget(structBudgetViolation(path, "values"));
    if (depth > structLimits.maxDepth) throw new OverBudget(structBudgetViolation(path, "depth"));
  }

  jsonMessage(desc: DescMessage, json: unknown, prefix: string): void {
    if (jsonTypes.has(desc.typeName)) return this.jsonValue(json, prefix.replace(/\.$/, ""), 0);
    if (json === null || typeof json !== "object" || Array.isArray(json)) return;
    const fields = jsonFields(desc);
    if (fields.size === 0) return;
    for (const [key, value] of Object.entries(json)) {
      const f = fields.get(key);
      if (!f || value === null || typeof value !== "object") continue;
      const path = prefix + f.name;
      if (f.fieldKind === "list" && Array.isArray(value)) listSize(f, value.length, path);
      const m = fieldMessage(f);
      if (m === undefined || !reachesJson(m)) continue;
      if (f.fieldKind === "list" && Array.isArray(value)) value.forEach((v, i) => this.jsonMessage(m, v, `${path}[${i}].`));
      else if (f.fieldKind === "map" && !Array.isArray(value)) for (const [k, v] of Object.entries(value)) this.jsonMessage(m, v, `${path}[${JSON.stringify(k)}].`);
      else if (f.fieldKind === "message") this.jsonMessage(m, value, `${path}.`);
    }
  }

  /** One JSON value and everything in it. */
  jsonValue(value: unknown, path: string, depth: number): void {
    if (value === null || typeof value !== "object") return;
    if (depth + 1 > structLimits.maxDepth) throw new OverBudget(structBudgetViolation(path, "depth"));
    if (Array.isArray(value)) {
      for (const v of value) {
        this.#count(path, depth + 1);
        this.jsonValue(v, path, depth + 1);
      }
    } else {
      for (const k in value) {
        if (!Object.hasOwn(value, k)) continue;
        this.#count(path, depth + 1);
        this.jsonValue((value as Record<string, unknown>)[k], path, depth + 1);
      }
    }
  }

  binaryMessage(desc: DescMessage, bytes: Uint8Array, path: string, depth = 0): void {
    switch (desc.typeName) {
      case "google.protobuf.Struct":
        return this.#binaryFields(bytes, 1, path, depth + 1, true);
      case "google.protobuf.ListValue":
        return this.#binaryFields(bytes, 1, path, depth + 1, false);
      case "google.protobuf.Value":
        return this.#binaryValue(bytes, path, depth);
    }
    const reader = new BinaryReader(bytes);
    const items = new Map<number, number>();
    while (reader.pos < reader.len) {
      const [no, wireType] = reader.tag();
      const f = desc.fields.find((x) => x.number === no);
      if (f?.fieldKind === "list") {
        // One item per occurrence; a packed run holds one per varint's last byte (or per fixed width).
        let n = 1;
        if (wireType === WireType.LengthDelimited && f.listKind !== "message" && !(f.listKind === "scalar" && (f.scalar === ScalarType.STRING || f.scalar === ScalarType.BYTES))) {
          n = packedCount(f.listKind === "scalar" ? f.scalar : undefined, reader.bytes()); // the run without its length prefix
          items.set(no, (items.get(no) ?? 0) + n);
          listSize(f, items.get(no)!, `${path}${f.name}`);
          continue;
        }
        items.set(no, (items.get(no) ?? 0) + n);
        listSize(f, items.get(no)!, `${path}${f.name}`);
      }
      const m = f && fieldMessage(f);
      if (!f || !m || wireType !== WireType.LengthDelimited || !reachesJson(m)) {
        reader.skip(wireType, no);
        continue;
      }
      const sub = reader.bytes();
      if (f.fieldKind === "map") this.#mapEntry(m, sub, `${path}${f.name}`, depth);
      else if (f.fieldKind === "list") this.binaryMessage(m, sub, `${path}${f.name}[${items.get(no)! - 1}].`, depth);
      else this.binaryMessage(m, sub, `${path}${f.name}.`, depth);
    }
  }

  /** A map entry whose value (field 2) is a message. */
  #mapEntry(value: DescMessage, bytes: Uint8Array, path: string, depth: number): void {
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [no, wireType] = reader.tag();
      if (no === 2 && wireType === WireType.LengthDelimited) this.binaryMessage(value, reader.bytes(), `${path}.`, depth);
      else reader.skip(wireType, no);
    }
  }

  /** Struct (map entries in field 1, value in the entry's field 2) or ListValue (Values in field 1). */
  #binaryFields(bytes: Uint8Array, field: number, path: string, depth: number, entries: boolean): void {
    const name = path.replace(/\.$/, "");
    if (depth > structLimits.maxDepth) throw new OverBudget(structBudgetViolation(name, "depth"));
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [no, wireType] = reader.tag();
      if (no !== field || wireType !== WireType.LengthDelimited) {
        reader.skip(wireType, no);
        continue;
      }
      this.#count(name, depth);
      const sub = reader.bytes();
      if (!entries) {
        this.#binaryValue(sub, path, depth);
        continue;
      }
      const entry = new BinaryReader(sub);
      while (entry.pos < entry.len) {
        const [n, w] = entry.tag();
        if (n === 2 && w === WireType.LengthDelimited) this.#binaryValue(entry.bytes(), path, depth);
        else entry.skip(w, n);
      }
    }
  }

  /** A Value: only its struct_value (5) and list_value (6) hold more. */
  #binaryValue(bytes: Uint8Array, path: string, depth: number): void {
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [no, wireType] = reader.tag();
      if ((no === 5 || no === 6) && wireType === WireType.LengthDelimited) this.#binaryFields(reader.bytes(), 1, path, depth + 1, no === 5);
      else reader.skip(wireType, no);
    }
  }
}

/** Refuses a list more than grossFactor times over its `repeated.max_items`, in the first pass's words. */
function listSize(field: DescField, length: number, path: string): void {
  const max = maxItemsOf(field);
  if (max !== undefined && length > grossFactor * max) {
    throw new OverBudget({ field: path, description: `must contain no more than ${max} item(s)` });
  }
}

/** Items in a packed run: fixed-width ones by their width, varints (enums too) by their last byte, the one below 0x80. */
function packedCount(scalar: ScalarType | undefined, bytes: Uint8Array): number {
  if (scalar === ScalarType.DOUBLE || scalar === ScalarType.FIXED64 || scalar === ScalarType.SFIXED64) return Math.floor(bytes.length / 8);
  if (scalar === ScalarType.FLOAT || scalar === ScalarType.FIXED32 || scalar === ScalarType.SFIXED32) return Math.floor(bytes.length / 4);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! < 0x80) n++;
  return n;
}
