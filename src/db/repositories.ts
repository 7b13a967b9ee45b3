import type { Transaction } from "kysely";
import { InternalError } from "../shared/errors.js";
import { UserRepository } from "../users/user.repository.js";
import { IdempotencyRepository } from "./idempotency.repository.js";
import type { Database } from "./schema.js";

/**
 * The repositories of one transaction, all scoped to one tenant. Created by
 * UnitOfWork.transact only; once the transaction ends every accessor throws,
 * so a repository cannot leak out of its transaction and run unscoped or
 * uncommitted work.
 */
export class Repositories {
  readonly #trx: Transaction<Database>;
  readonly #tenant: string;
  readonly #afterCommit: Array<() => void>;
  #open = true;
  #users?: UserRepository;
  #idempotency?: IdempotencyRepository;

  constructor(trx: Transaction<Database>, tenant: string, afterCommit: Array<() => void>) {
    this.#trx = trx;
    this.#tenant = tenant;
    this.#afterCommit = afterCommit;
  }

  get users(): UserRepository {
    return (this.#users ??= new UserRepository(this.#live(), this.#tenant));
  }

  get idempotency(): IdempotencyRepository {
    return (this.#idempotency ??= new IdempotencyRepository(this.#live(), this.#tenant));
  }

  /** Runs `hook` after the transaction commits (never if it rolls back). */
  onCommit(hook: () => void): void {
    this.#live();
    this.#afterCommit.push(hook);
  }

  /** @internal Called by the unit of work when the transaction ends. */
  close(): void {
    this.#open = false;
  }

  #live(): Transaction<Database> {
    if (!this.#open) throw new InternalError("repository used after its transaction ended");
    return this.#trx;
  }
}
