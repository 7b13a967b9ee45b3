// Pure helpers of src/db against values written here, not derived from the
// code they test (survivors of `npm run mutate`: the end-to-end suites reach
// them only through whatever one gateway happens to run — the findings
// suites filter by plain prefixes only, no suite loses a connection in every
// way node-postgres reports it, and statement names show only in metrics).
import { randomUUID } from "node:crypto";
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, sql } from "kysely";
import { describe, expect, it } from "vitest";
import { creationKeyset, creationOrder } from "../src/db/creation-order.js";
import { SqlState, sqlState, translateDatabaseError } from "../src/db/database-errors.js";
import { likePrefix } from "../src/db/like-prefix.js";
import type { Database } from "../src/db/schema.js";
import { builtStatement, statementName } from "../src/db/statement-name.js";
import {
  AbortedError,
  AlreadyExistsError,
  DeadlineExceededError,
  NotFoundError,
  UnavailableError,
} from "../src/shared/errors.js";

describe("likePrefix", () => {
  it("escapes LIKE's pattern characters and the escape itself, and adds one trailing %", () => {
    expect(likePrefix("src/")).toBe("src/%");
    expect(likePrefix("a_b%c\\d")).toBe("a\\_b\\%c\\\\d%");
    expect(likePrefix("%")).toBe("\\%%");
    expect(likePrefix("")).toBe("%");
  });
});

/** An error as node-postgres throws it: a message and, from the server, a SQLSTATE `code`. */
const driverError = (message: string, code?: unknown) => Object.assign(new Error(message), code === undefined ? {} : { code });

describe("translateDatabaseError", () => {
  // SQLSTATE → what the client is told; written out here, not read from SqlState.
  const byState: Array<[string, (new (...args: never[]) => Error) | "unchanged"]> = [
    ["57014", DeadlineExceededError], // query_canceled
    ["55P03", DeadlineExceededError], // lock_not_available
    ["40001", AbortedError], // serialization_failure
    ["40P01", AbortedError], // deadlock_detected
    ["23505", AlreadyExistsError], // unique_violation
    ["08006", UnavailableError], // connection_failure
    ["08000", UnavailableError],
    ["57P01", UnavailableError], // admin_shutdown
    ["57P03", UnavailableError], // cannot_connect_now
    ["53300", UnavailableError], // too_many_connections
    ["28P01", UnavailableError], // invalid_password
    ["28000", UnavailableError],
    ["3D000", UnavailableError], // invalid_catalog_name
    ["23503", "unchanged"], // foreign_key_violation: a repository's to name
    ["23514", "unchanged"],
    ["42P01", "unchanged"],
    ["53200", "unchanged"], // out_of_memory: not a connection problem
    ["57000", "unchanged"],
    ["3D001", "unchanged"],
    ["XX000", "unchanged"],
  ];

  it("maps each SQLSTATE to its domain error, keeping the driver's error as the cause where it says why", () => {
    for (const [state, expected] of byState) {
      const err = driverError(`server says ${state}`, state);
      const translated = translateDatabaseError(err);
      if (expected === "unchanged") expect(translated, state).toBe(err);
      else expect(translated, state).toBeInstanceOf(expected);
    }
    const deadline = translateDatabaseError(driverError("canceling statement due to statement timeout", "57014")) as DeadlineExceededError;
    expect(deadline.message).toBe("the request's deadline passed while the database was working");
    expect((deadline.cause as Error).message).toBe("canceling statement due to statement timeout");
    const conflict = translateDatabaseError(driverError("could not serialize access", "40001")) as AbortedError;
    expect({ message: conflict.message, reason: conflict.reason }).toEqual({ message: "the request conflicted with a concurrent one; retry it", reason: "TRANSACTION_CONFLICT" });
    expect((translateDatabaseError(driverError("deadlock detected", "40P01")) as AbortedError).reason).toBe("TRANSACTION_CONFLICT");
    const unique = driverError('duplicate key value violates unique constraint "users_email_key"', "23505");
    const exists = translateDatabaseError(unique) as AlreadyExistsError;
    expect({ message: exists.message, metadata: exists.metadata, cause: exists.cause }).toEqual({
      message: "resource with this key already exists",
      metadata: { resource: "resource", field: "key" },
      cause: unique,
    });
    const down = driverError("terminating connection due to administrator command", "57P01");
    expect((translateDatabaseError(down) as UnavailableError).cause).toBe(down);
  });

  it("reads only a SQLSTATE-shaped code: five digits or capitals", () => {
    expect(sqlState(driverError("x", "40001"))).toBe("40001");
    expect(sqlState(driverError("x", "0A000"))).toBe("0A000");
    for (const code of ["4000", "400010", "40p01", " 40001", "ECONNRESET", 40001, undefined]) {
      expect(sqlState(driverError("x", code)), String(code)).toBeUndefined();
    }
    expect(sqlState(null)).toBeUndefined();
    expect(sqlState(undefined)).toBeUndefined();
    expect(sqlState("40001")).toBeUndefined();
    expect(SqlState).toEqual({
      uniqueViolation: "23505",
      foreignKeyViolation: "23503",
      serializationFailure: "40001",
      deadlockDetected: "40P01",
      queryCanceled: "57014",
      lockNotAvailable: "55P03",
    });
  });

  it("maps a connection lost or refused, by errno or by node-postgres' message, to UNAVAILABLE, and nothing else", () => {
    for (const errno of ["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH"]) {
      const err = driverError(`connect ${errno} 127.0.0.1:5432`, errno);
      const translated = translateDatabaseError(err);
      expect(translated, errno).toBeInstanceOf(UnavailableError);
      expect((translated as UnavailableError).cause).toBe(err);
    }
    for (const message of [
      "Connection terminated unexpectedly",
      "Connection terminated due to connection timeout",
      "timeout exceeded when trying to connect",
      "Client has encountered a connection error and is not queryable",
      "Connection refused",
      "the database system is starting up",
      "the database system is shutting down",
      "Query read timeout",
    ]) {
      expect(translateDatabaseError(driverError(message)), message).toBeInstanceOf(UnavailableError);
    }
    for (const err of [driverError("EACCES", "EACCES"), driverError("syntax error at or near"), driverError("connection"), { code: "ECONNRESETX" }]) {
      expect(translateDatabaseError(err)).toBe(err);
    }
    // Not an Error: its text is not read.
    const notAnError = { message: "Connection terminated" };
    expect(translateDatabaseError(notAnError)).toBe(notAnError);
    expect(translateDatabaseError(null)).toBeNull();
    expect(translateDatabaseError("Connection refused")).toBe("Connection refused");
  });

  it("passes domain errors through untouched, whatever code they carry", () => {
    const notFound = Object.assign(new NotFoundError("user", "u1"), { code: "40001" });
    expect(translateDatabaseError(notFound)).toBe(notFound);
  });
});

// Compiles only: kysely's documented way to build SQL without a database.
const compiler = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

describe("statementName", () => {
  it("names a built statement by its kind and first table, aliases seen through", () => {
    const db = compiler;
    expect(statementName(db.selectFrom("users").selectAll().compile())).toBe("select users");
    expect(statementName(db.selectFrom("users as u").innerJoin("agents as a", "a.id", "u.id").selectAll().compile())).toBe("select users");
    expect(statementName(db.insertInto("tasks").values({ id: "x" } as never).compile())).toBe("insert tasks");
    expect(statementName(db.updateTable("operations").set({ version: 2 } as never).compile())).toBe("update operations");
    expect(statementName(db.deleteFrom("findings as f").where("f.id", "=", "x").compile())).toBe("delete findings");
    expect(statementName(db.mergeInto("users as t").using("agents as s", "s.id", "t.id").whenMatched().thenDelete().compile())).toBe("merge users");
  });

  it("names an update by the table it updates, not by the one its FROM joins", () => {
    const picked = compiler.selectFrom("tasks").select("id");
    const update = compiler.with("r", () => picked).updateTable("tasks as u").from("r").set({ version: 2 } as never).whereRef("u.id", "=", "r.id" as never);
    expect(statementName(update.compile())).toBe("update tasks");
  });

  it("names a built statement without a table by its kind alone", () => {
    expect(statementName(compiler.selectNoFrom(sql<number>`1`.as("one")).compile())).toBe("select");
    expect(statementName(compiler.selectFrom(compiler.selectFrom("users").select("id").as("sub")).selectAll().compile())).toBe("select");
  });

  it("names SQL text by its leading comment, transaction control by its word, anything else raw", () => {
    const text = (s: string) => statementName(sql.raw(s).compile(compiler));
    expect(text("/* tasks.finishAllAmong */ with done as (select 1) select 1")).toBe("tasks.finishAllAmong");
    expect(text("/* a */ select 1")).toBe("a");
    expect(text("/*  */ select 1")).toBe("raw");
    expect(text("/* never closed")).toBe("raw");
    expect(text("/*x*/ select 1")).toBe("raw");
    expect(text("select 1 /* late */")).toBe("raw");
    expect(text("begin")).toBe("begin");
    expect(text("start transaction isolation level serializable")).toBe("begin");
    expect(text("commit")).toBe("commit");
    expect(text("rollback")).toBe("rollback");
    expect(text("begin; select 1")).toBe("raw");
    expect(text("commit and chain")).toBe("raw");
    expect(text("select 1")).toBe("raw");
  });
});

describe("builtStatement", () => {
  it("splits a built statement's name into operation and table, and refuses any other name", () => {
    for (const kind of ["select", "insert", "update", "delete", "merge"]) expect(builtStatement(`${kind} users`)).toEqual({ operation: kind, table: "users" });
    expect(builtStatement("select two words")).toEqual({ operation: "select", table: "two words" });
    for (const name of ["select", "raw", "begin", "tasks.claim x", "upsert users", " select users"]) expect(builtStatement(name), name).toBeUndefined();
  });
});

describe("creation order", () => {
  it("lists oldest first, the id breaking ties, and pages by the same two values", () => {
    expect(creationOrder).toEqual([
      { column: "create_time", direction: "asc" },
      { column: "id", direction: "asc" },
    ]);
    const id = randomUUID();
    const keyset = creationKeyset<{ createTime: Date; id: string }>("agents?state=on");
    expect(keyset.query).toBe("agents?state=on");
    expect(keyset.shape).toEqual(["timestamp", "uuid"]);
    expect(keyset.keyOf({ createTime: new Date("2026-01-02T03:04:05.678Z"), id })).toEqual(["2026-01-02T03:04:05.678Z", id]);
  });
});
