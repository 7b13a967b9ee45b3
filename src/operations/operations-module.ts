import type { Logger } from "pino";
import type { DatabaseHandle } from "../db/database.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import type { KeysetPager } from "../shared/keyset-pager.js";
import { DrainSignals } from "./drain-signals.js";
import { NotificationHub } from "./notification-hub.js";
import { OperationWatcher, type WatchSettings } from "./operation-watcher.js";
import { OperationsHandler } from "./operations.handler.js";
import { OperationsService } from "./operations.service.js";
import type { QueueEvents } from "./queue-events.js";
import type { QueueSettings } from "./queue-settings.js";
import { OperationStarter } from "./start-operation.js";
import { StreamSlots } from "./stream-slots.js";
import { TaskLifecycle } from "./task-lifecycle.js";
import { WorkersHandler } from "./workers.handler.js";
import { WorkersService } from "./workers.service.js";
import { ArtifactsService } from "../artifacts/artifacts.service.js";

/** Everything the operations capability is configured with. */
export interface OperationsSettings {
  readonly queue: QueueSettings;
  readonly watch: WatchSettings;
  readonly maxStreamsPerPrincipal: number;
  /** Claims one credential may have waiting at once on this instance (a fleet of workers shares one key). */
  readonly maxClaimWaitsPerCredential: number;
  /** Largest artifact a task may upload, in bytes. */
  readonly maxArtifactBytes: number;
  /** Told of every artifact chunk stored or read (TransferGarbage). */
  readonly artifactBytesMoved?: (bytes: number) => void;
  /** Told of claims, expiries, retries and completions (the metrics). */
  readonly events?: QueueEvents;
}

/**
 * The operations capability of one gateway process, wired once: the
 * process's notification listener, the stream cap, the handlers of
 * OperationService and WorkerService, and the starter that other services'
 * use cases call to enqueue work in their own transactions.
 */
export class OperationsModule {
  readonly starter: OperationStarter;
  readonly operationsHandler: OperationsHandler;
  readonly workersHandler: WorkersHandler;
  /** Artifact uploads and downloads, for the HTTP routes beside the RPCs (src/server/artifacts/). */
  readonly artifacts: ArtifactsService;
  readonly hub: NotificationHub;
  readonly slots: StreamSlots;
  /** ClaimTask calls waiting for a task on this instance, per credential. */
  readonly claimWaits: StreamSlots;
  readonly #calls = new DrainSignals();
  readonly #uow: UnitOfWork;
  readonly #lifecycle: TaskLifecycle;

  private constructor(hub: NotificationHub, uow: UnitOfWork, pager: KeysetPager, settings: OperationsSettings) {
    const lifecycle = new TaskLifecycle(settings.queue, settings.events);
    const calls = this.#calls;
    this.#uow = uow;
    this.#lifecycle = lifecycle;
    this.hub = hub;
    this.slots = new StreamSlots(settings.maxStreamsPerPrincipal);
    this.claimWaits = new StreamSlots(settings.maxClaimWaitsPerCredential, "waiting claims");
    this.starter = new OperationStarter(settings.queue);
    const watcher = new OperationWatcher(uow, hub, settings.watch);
    this.artifacts = new ArtifactsService(uow, pager, lifecycle, settings.maxArtifactBytes, settings.artifactBytesMoved);
    this.operationsHandler = new OperationsHandler(new OperationsService(uow, pager, lifecycle), watcher, this.slots, calls, this.artifacts);
    this.workersHandler = new WorkersHandler(
      new WorkersService(uow, lifecycle, hub, settings.watch.pollMs, settings.watch.keepAliveMs),
      calls,
      this.claimWaits,
      this.artifacts,
    );
  }

  static async start(database: DatabaseHandle, uow: UnitOfWork, pager: KeysetPager, settings: OperationsSettings, log: Logger): Promise<OperationsModule> {
    return new OperationsModule(await NotificationHub.start(database, log), uow, pager, settings);
  }

  /**
   * The instance is shutting down: open watches end with UNAVAILABLE (clients resume
   * on another instance with `after_sequence`) and waiting claims return empty,
   * so neither holds the drain up until its grace period runs out.
   */
  drain(): void {
    this.#calls.drain();
  }

  /**
   * Returns up to 10 of the tenant's expired leases to the queue (or fails
   * their tasks when out of attempts), in one transaction; how many it
   * handled. For the housekeeping sweeper, which calls it for every tenant.
   */
  recoverExpiredLeases(tenant: string): Promise<number> {
    return this.#uow.transact({ tenant }, (tx) => this.#lifecycle.recoverExpired(tx));
  }

  /** Stops listening; call before the database closes. */
  close(): Promise<void> {
    return this.hub.close();
  }
}
