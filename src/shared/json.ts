/**
 * Plain JSON, as free-form settings (`google.protobuf.Struct` on the wire,
 * `jsonb` in the database) travel through the domain, which knows neither.
 */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object: the shape of every free-form `config`. */
export type JsonObject = { [key: string]: JsonValue };
