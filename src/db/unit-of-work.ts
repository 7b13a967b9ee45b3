import type { Context } from "@opentelemetry/api";
import { type Kysely, sql, type Transaction } from "kysely";
import { AbortedError, DeadlineExceededError, UnavailableError } from "../shared/errors.js";
import type { Scope } from "../shared/scope.js";
import { maxTimerMs } from "../shared/timer-limit.js";
import { translateDatabaseError } from "./database-errors.js";
import { recordsStatements, StatementParent, transactionSpan } from "../tracing/work-spans.js";
import { Repositories } from "./repositories.js";
import { TouchedIds } from "./touched-ids.js";
import type { Database } from "./schema.js";
import type { Announcer } from "./after-commit-announcer.js";

/**
 * One transaction per use case. `transact` opens a transaction, hands the
 * work a set of repositories bound to that transaction and to the caller's
 * tenant, commits, and only then resolves — so a handler's answer is never
 * sent for work that could still roll back. Any throw rolls back everything.
 *
 * A scope with `audit` (a call that changes things) gets its audit event
 * inserted before the commit of every transaction that wrote something.
 *
 * `read` is for use cases that issue a single query (a get, a page of a
 * list): that statement is its own transaction, so BEGIN and COMMIT would
 * only add two round trips to the database.
 *
 * @example
 *   const user = await uow.read(scope, (tx) => tx.users.get(id));
 *   await uow.transact(scope, (tx) => tx.users.update(id, patch, version));
 */
export class UnitOfWork {
  readonly #db: Kysely<Database>;
  readonly #failures: UnitOfWorkFailures | undefined;
  readonly #announcer: Announcer | undefined;

  /**
   * `failures` is told of each unit of work answered ABORTED (a lost race)
   * or UNAVAILABLE (the metrics); `announcer` sends what a committed
   * transaction announces (the DatabaseHandle; without one nothing is).
   */
  constructor(db: Kysely<Database>, failures?: UnitOfWorkFailures, announcer?: Announcer) {
    this.#db = db;
    this.#failures = failures;
    this.#announcer = announcer;
  }

  /** The database's error as a domain error, counted when the client is told to retry. */
  #translate(err: unknown): unknown {
    const error = translateDatabaseError(err);
    if (this.#failures !== undefined) {
      if (error instanceof UnavailableError) this.#failures.unavailable();
      else if (error instanceof AbortedError && error.reason === "TRANSACTION_CONFLICT") this.#failures.conflict();
    }
    return error;
  }

  transact<T>(scope: Scope, work: (tx: Repositories) => Promise<T>): Promise<T> {
    // Traced as one span under the call's, its statements its children (when tracing is on and the call records).
    return transactionSpan(scope.trace, (traced) => this.#transact(scope, traced, work));
  }

  async #transact<T>(scope: Scope, traced: Context | undefined, work: (tx: Repositories) => Promise<T>): Promise<T> {
    const left = () => (scope.deadline === undefined ? undefined : scope.deadline - Date.now());
    if ((left() ?? 1) <= 0) throw new DeadlineExceededError();
    const afterCommit: Array<() => void> = [];
    let result: T;
    try {
      result = await this.#db.transaction().execute(async (trx: Transaction<Database>) => {
        // Measured again once the connection is ours: waiting for it (pool or
        // the embedded queue) spends the same deadline.
        const remaining = left();
        if (remaining !== undefined && remaining <= 0) throw new DeadlineExceededError();
        if (remaining !== undefined) {
          // Bound every statement of this transaction by the client's deadline.
          // Clamped as timers are: PostgreSQL refuses a longer statement_timeout.
          await sql`/* transaction.statementTimeout */ select set_config('statement_timeout', ${String(Math.min(maxTimerMs, Math.max(1, Math.ceil(remaining))))}, true)`.execute(trx);
        }
        const touched = scope.audit === undefined ? undefined : new TouchedIds();
        const observed = traced === undefined ? trx : trx.withPlugin(new StatementParent(traced));
        const tx = new Repositories(touched === undefined ? observed : observed.withPlugin(touched), scope.tenant, afterCommit, this.#announcer);
        try {
          const done = await work(tx);
          // The change's audit event, in the change's own transaction: if it
          // cannot be written, nothing commits.
          if (scope.audit !== undefined && touched !== undefined) {
            await tx.audit.insertIfChanged(scope.audit.eventFor(touched.ids, new Date()));
          }
          return done;
        } finally {
          tx.close();
        }
      });
    } catch (err) {
      throw this.#translate(err);
    }
    for (const hook of afterCommit) hook();
    return result;
  }

  /**
   * Runs a one-statement read outside an explicit transaction — under
   * PostgreSQL's READ COMMITTED a statement sees one snapshot either way —
   * straight on the pool: the statement takes a connection for as long as it
   * runs, with no BEGIN, COMMIT or connection pinning around it. (A read of
   * several statements stays correct, each seeing its own snapshot, as it
   * would on one connection without a transaction.) A request with a
   * deadline still takes a transaction, where SET LOCAL bounds the statement
   * by it.
   */
  async read<T>(scope: Scope, work: (tx: Repositories) => Promise<T>): Promise<T> {
    // A read changes nothing, so it has nothing to audit.
    if (scope.deadline !== undefined) return this.transact({ tenant: scope.tenant, deadline: scope.deadline, trace: scope.trace }, work);
    // Its statement recorded straight under the call's span (when the call records).
    const db = recordsStatements(scope.trace) ? this.#db.withPlugin(new StatementParent(scope.trace)) : this.#db;
    const tx = new Repositories(db as Transaction<Database>, scope.tenant, readOnlyHooks);
    try {
      return await work(tx);
    } catch (err) {
      throw this.#translate(err);
    } finally {
      tx.close();
    }
  }
}

/** What a UnitOfWork reports about failures a client may retry. */
export interface UnitOfWorkFailures {
  conflict(): void;
  unavailable(): void;
}

const readOnlyHooks: Array<() => void> = new Proxy([], {
  set() {
    throw new Error("onCommit is not available in a read");
  },
});
