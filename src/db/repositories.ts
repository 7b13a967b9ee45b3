import type { Transaction } from "kysely";
import { InternalError } from "../shared/errors.js";
import { ArtifactRepository } from "../artifacts/artifact.repository.js";
import { ApiKeyRepository } from "../apikeys/api-key.repository.js";
import { AuditRepository } from "../audit/audit.repository.js";
import { AgentRepository } from "../agents/agent.repository.js";
import { FindingRepository } from "../findings/finding.repository.js";
import { IpaRepository } from "../ipas/ipa.repository.js";
import { OperationRepository } from "../operations/operation.repository.js";
import { TaskRepository } from "../operations/task.repository.js";
import { UserRepository } from "../users/user.repository.js";
import { WorkflowRepository } from "../workflows/workflow.repository.js";
import { WebhookRepository } from "../webhooks/webhook.repository.js";
import { IdempotencyRepository } from "./idempotency.repository.js";
import type { Database } from "./schema.js";
import type { Announce, Announcement, Announcer } from "./after-commit-announcer.js";

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
  readonly #announcer: Announcer | undefined;
  /** What this transaction announces on commit, distinct by channel and payload. */
  #announcements: Map<string, Announcement> | undefined;
  #open = true;
  #users?: UserRepository;
  #workflows?: WorkflowRepository;
  #agents?: AgentRepository;
  #ipas?: IpaRepository;
  #findings?: FindingRepository;
  #idempotency?: IdempotencyRepository;
  #operations?: OperationRepository;
  #tasks?: TaskRepository;
  #apiKeys?: ApiKeyRepository;
  #audit?: AuditRepository;
  #webhooks?: WebhookRepository;
  #artifacts?: ArtifactRepository;

  /** Without an `announcer`, nothing registered is announced: waiters find the work by polling. */
  constructor(trx: Transaction<Database>, tenant: string, afterCommit: Array<() => void>, announcer?: Announcer) {
    this.#trx = trx;
    this.#tenant = tenant;
    this.#afterCommit = afterCommit;
    this.#announcer = announcer;
  }

  // #live() runs on every access, not only the first: a cached repository
  // must not be handed out once the transaction has ended.
  get users(): UserRepository {
    const trx = this.#live();
    return (this.#users ??= new UserRepository(trx, this.#tenant));
  }

  get workflows(): WorkflowRepository {
    const trx = this.#live();
    return (this.#workflows ??= new WorkflowRepository(trx, this.#tenant));
  }

  get agents(): AgentRepository {
    const trx = this.#live();
    return (this.#agents ??= new AgentRepository(trx, this.#tenant));
  }

  get ipas(): IpaRepository {
    const trx = this.#live();
    return (this.#ipas ??= new IpaRepository(trx, this.#tenant));
  }

  get findings(): FindingRepository {
    const trx = this.#live();
    return (this.#findings ??= new FindingRepository(trx, this.#tenant));
  }

  get idempotency(): IdempotencyRepository {
    const trx = this.#live();
    return (this.#idempotency ??= new IdempotencyRepository(trx, this.#tenant));
  }

  get operations(): OperationRepository {
    const trx = this.#live();
    return (this.#operations ??= new OperationRepository(trx, this.#tenant, this.#announce));
  }

  get tasks(): TaskRepository {
    const trx = this.#live();
    return (this.#tasks ??= new TaskRepository(trx, this.#tenant, this.#announce));
  }

  get apiKeys(): ApiKeyRepository {
    const trx = this.#live();
    return (this.#apiKeys ??= new ApiKeyRepository(trx, this.#tenant));
  }

  get audit(): AuditRepository {
    const trx = this.#live();
    return (this.#audit ??= new AuditRepository(trx, this.#tenant));
  }

  get webhooks(): WebhookRepository {
    const trx = this.#live();
    return (this.#webhooks ??= new WebhookRepository(trx, this.#tenant));
  }

  get artifacts(): ArtifactRepository {
    const trx = this.#live();
    return (this.#artifacts ??= new ArtifactRepository(trx, this.#tenant));
  }

  /** Runs `hook` after the transaction commits (never if it rolls back). */
  onCommit(hook: () => void): void {
    this.#live();
    this.#afterCommit.push(hook);
  }

  /**
   * Registers a notification to send after the commit (see
   * AfterCommitAnnouncer): a NOTIFY inside the transaction would serialise
   * its commit with every other notifying one.
   */
  readonly #announce: Announce = (channel, payload) => {
    this.#live();
    if (this.#announcements === undefined) {
      const announcements = new Map<string, Announcement>();
      this.#afterCommit.push(() => this.#announcer?.announce(announcements.values()));
      this.#announcements = announcements;
    }
    this.#announcements.set(`${channel}\0${payload}`, { channel, payload });
  };

  /** @internal Called by the unit of work when the transaction ends. */
  close(): void {
    this.#open = false;
  }

  #live(): Transaction<Database> {
    if (!this.#open) throw new InternalError("repository used after its transaction ended");
    return this.#trx;
  }
}
