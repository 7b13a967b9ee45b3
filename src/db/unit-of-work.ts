import { type Kysely, sql, type Transaction } from "kysely";
import { DeadlineExceededError } from "../shared/errors.js";
import type { Scope } from "../shared/scope.js";
import { translateDatabaseError } from "./database-errors.js";
import { Repositories } from "./repositories.js";
import type { Database } from "./schema.js";

/**
 * One transaction per use case. `transact` opens a transaction, hands the
 * work a set of repositories bound to that transaction and to the caller's
 * tenant, commits, and only then resolves — so a handler's answer is never
 * sent for work that could still roll back. Any throw rolls back everything.
 *
 * @example
 *   const user = await uow.transact(scope, (tx) => tx.users.get(id));
 */
export class UnitOfWork {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async transact<T>(scope: Scope, work: (tx: Repositories) => Promise<T>): Promise<T> {
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
          await sql`select set_config('statement_timeout', ${String(Math.max(1, Math.ceil(remaining)))}, true)`.execute(trx);
        }
        const tx = new Repositories(trx, scope.tenant, afterCommit);
        try {
          return await work(tx);
        } finally {
          tx.close();
        }
      });
    } catch (err) {
      throw translateDatabaseError(err);
    }
    for (const hook of afterCommit) hook();
    return result;
  }
}
