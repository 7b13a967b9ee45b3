// Edges of src/db that survived the first mutation run over the direct tests
// (test/db-rules, db-transactions, db-connections.test.ts), in a file of
// their own: `npm run mutate` retests every mutant a changed test file killed.
import { createHash, randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { translateDatabaseError } from "../src/db/database-errors.js";
import { jsonCodec } from "../src/db/idempotency.repository.js";
import { PgSessionLock } from "../src/db/session-lock.js";
import { builtStatement } from "../src/db/statement-name.js";
import { UnavailableError } from "../src/shared/errors.js";
import { captureLog } from "./support/log-capture.js";
import { suitePostgres } from "./support/suite-postgres.js";

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

describe("PgSessionLock (PostgreSQL only)", () => {
  let postgres: Awaited<ReturnType<typeof suitePostgres>>;
  let admin: pg.Client;
  beforeAll(async () => {
    postgres = await suitePostgres();
    admin = new pg.Client({ connectionString: postgres.database.url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await postgres?.close();
  });

  it("releases nothing, and fails nothing, when it never held the lock", async () => {
    await expect(new PgSessionLock(postgres.database.url!, `lock-${randomUUID()}`, captureLog().log).release()).resolves.toBeUndefined();
  });

  it("takes the lock again after its connection died with nobody else taking it", async () => {
    const name = `lock-${randomUUID()}`;
    const lock = new PgSessionLock(postgres.database.url!, name, captureLog().log);
    try {
      expect(await lock.acquire()).toBe(true);
      const low = (BigInt.asUintN(64, createHash("sha256").update(name).digest().readBigInt64BE(0)) & 0xffffffffn).toString();
      await admin.query("select pg_terminate_backend(pid, 5000) from pg_locks where locktype = 'advisory' and granted and objid = $1::bigint::oid", [low]);
      // The first acquire may be the one that finds the connection dead (false); the next one connects anew and takes the free lock.
      expect((await lock.acquire()) || (await lock.acquire())).toBe(true);
    } finally {
      await lock.release();
    }
  });
});
