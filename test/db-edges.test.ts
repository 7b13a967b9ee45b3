// Edges of src/db that survived the first mutation run over the direct tests
// (test/db-rules, db-transactions, db-connections.test.ts), in a file of
// their own: `npm run mutate` retests every mutant a changed test file killed.
import { describe, expect, it } from "vitest";
import { translateDatabaseError } from "../src/db/database-errors.js";
import { jsonCodec } from "../src/db/idempotency.repository.js";
import { builtStatement } from "../src/db/statement-name.js";
import { UnavailableError } from "../src/shared/errors.js";

describe("translateDatabaseError", () => {
  it("keeps the driver's error as the cause of a connection failure it knows by its message", () => {
    const lost = new Error("Connection terminated unexpectedly");
    const translated = translateDatabaseError(lost);
    expect(translated).toBeInstanceOf(UnavailableError);
    expect((translated as UnavailableError).cause).toBe(lost);
  });
});

describe("jsonCodec", () => {
  // Made inside the test: one made while the file loads is the code as it was then.
  it("stores a value as it is, and restores the named date fields that hold text", () => {
    const codec = jsonCodec<{ at: Date; other: string }>("at");
    const value = { at: new Date(0), other: "1970-01-01T00:00:00.000Z" };
    expect(codec.toJson(value)).toBe(value);
    expect(codec.fromJson({ at: "1970-01-01T00:00:00.000Z", other: "1970-01-01T00:00:00.000Z" })).toEqual(value);
  });
});

describe("builtStatement", () => {
  it("takes no name without a space for a built statement, though it starts like one", () => {
    for (const name of ["selectx", "updates", "deleted"]) expect(builtStatement(name), name).toBeUndefined();
  });
});
